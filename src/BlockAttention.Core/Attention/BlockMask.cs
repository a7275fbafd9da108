using static TorchSharp.torch;

namespace BlockAttention.Attention;

/// <summary>
/// The attention mask of Block-Attention as one forward pass: each local block attends only to
/// itself (causally), the final block to everything before it and causally to itself.
/// </summary>
public static class BlockMask
{
    /// <summary>Bool <c>[total, total]</c>, true where row may attend to column; the last length is the final block.</summary>
    public static Tensor Create(IReadOnlyList<int> blockLengths, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(blockLengths);
        if (blockLengths.Count == 0 || blockLengths.Any(n => n < 0) || blockLengths[^1] == 0)
        {
            throw new ArgumentException("block lengths must be non-negative, with a non-empty final block");
        }

        int total = blockLengths.Sum();
        var allowed = new bool[total * total];
        int start = 0;
        for (int b = 0; b < blockLengths.Count; b++)
        {
            int end = start + blockLengths[b];
            // A local block sees from its own start; the final block sees from position 0.
            int visibleFrom = b == blockLengths.Count - 1 ? 0 : start;
            for (int row = start; row < end; row++)
            {
                Array.Fill(allowed, true, row * total + visibleFrom, row - visibleFrom + 1);
            }

            start = end;
        }

        return tensor(allowed, [total, total], device: device);
    }
}
