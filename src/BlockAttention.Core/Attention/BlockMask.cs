using BlockAttention.Runtime;
using static TorchSharp.torch;

namespace BlockAttention.Attention;

/// <summary>
/// The attention mask of Block-Attention as one forward pass: each local block attends only to
/// itself (causally), the final block to everything before it and causally to itself.
/// </summary>
public static class BlockMask
{
    /// <summary>
    /// Bool <c>[total, total]</c>, true where row may attend to column; the last length is the final
    /// block. Its size grows with the square of the prompt: for long prompts, build the rows of one
    /// chunk at a time with <see cref="CreateRows"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A length is negative, the final block is empty, or there are no blocks.</exception>
    public static Tensor Create(IReadOnlyList<int> blockLengths, Device? device = null)
    {
        long total = Validate(blockLengths);
        if (total > int.MaxValue)
        {
            throw new ArgumentException($"the blocks hold {total} tokens, more than a prompt can", nameof(blockLengths));
        }

        return CreateRows(blockLengths, 0, (int)total, device);
    }

    /// <summary>
    /// Rows <c>start .. start+count-1</c> of the mask: bool <c>[count, start+count]</c>, true where
    /// the row may attend to the column (no row attends to a later position, so these columns are
    /// all a row can see). Built on <paramref name="device"/> from one start position per row: the
    /// host does work in <paramref name="count"/> only.
    /// </summary>
    /// <exception cref="ArgumentException">The lengths are invalid (see <see cref="Create"/>).</exception>
    /// <exception cref="ArgumentOutOfRangeException">The rows are not within the blocks.</exception>
    public static Tensor CreateRows(IReadOnlyList<int> blockLengths, int start, int count, Device? device = null)
    {
        long total = Validate(blockLengths);
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(count);
        if ((long)start + count > total)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"rows {start}..{(long)start + count - 1} are past the {total} positions of the blocks");
        }

        // The first column each row sees: its block's start for a local block, 0 for the final block.
        var visibleFrom = new long[count];
        long blockStart = 0;
        for (int b = 0; b < blockLengths.Count; b++)
        {
            long blockEnd = blockStart + blockLengths[b];
            long from = b == blockLengths.Count - 1 ? 0 : blockStart;
            for (long row = Math.Max(blockStart, start); row < Math.Min(blockEnd, (long)start + count); row++)
            {
                visibleFrom[row - start] = from;
            }

            blockStart = blockEnd;
        }

        using var scope = NewDisposeScope();
        var rows = Scalars.Arange(start, (long)start + count, device: device).unsqueeze(1);
        var columns = Scalars.Arange(0, (long)start + count, device: device).unsqueeze(0);
        var first = tensor(visibleFrom, ScalarType.Int64, device).unsqueeze(1);
        return columns.ge(first).logical_and_(columns.le(rows)).MoveToOuterDisposeScope();
    }

    private static long Validate(IReadOnlyList<int> blockLengths)
    {
        ArgumentNullException.ThrowIfNull(blockLengths);
        if (blockLengths.Count == 0 || blockLengths.Any(n => n < 0) || blockLengths[^1] == 0)
        {
            throw new ArgumentException("block lengths must be non-negative, with a non-empty final block", nameof(blockLengths));
        }

        return blockLengths.Sum(n => (long)n);
    }
}
