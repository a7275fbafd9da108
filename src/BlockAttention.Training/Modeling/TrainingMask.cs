using BlockAttention.Runtime;
using BlockAttention.Training.Data;
using static TorchSharp.torch;

namespace BlockAttention.Training.Modeling;

/// <summary>
/// The attention mask of a training sample, over continuous positions <c>0..S-1</c>: in a block
/// sample, rows of a local block attend causally inside their own block only, and rows of the
/// final block and the response attend causally to everything before them; a full sample is
/// plain causal attention.
/// </summary>
public static class TrainingMask
{
    /// <summary>Whether row <c>i</c> may attend to column <c>j</c>, as a boolean <c>[S, S]</c> tensor on <paramref name="device"/>.</summary>
    public static Tensor Allowed(TrainingSample sample, Device device)
    {
        ArgumentNullException.ThrowIfNull(sample);
        return Allowed(sample.Length, sample.BlockAttention ? sample.LocalBlockLengths : [], device);
    }

    /// <summary>The mask of a sequence of <paramref name="length"/> tokens whose first blocks have <paramref name="localBlockLengths"/> tokens.</summary>
    public static Tensor Allowed(int length, IReadOnlyList<int> localBlockLengths, Device device)
    {
        var firstVisible = FirstVisible(length, localBlockLengths, length);
        using var scope = NewDisposeScope();
        var columns = Scalars.Arange(0, length, device: device).unsqueeze(0);
        var rows = Scalars.Arange(0, length, device: device).unsqueeze(1);
        var first = tensor(firstVisible, ScalarType.Int64, device).unsqueeze(1);
        return columns.le(rows).logical_and_(columns.ge(first)).MoveToOuterDisposeScope();
    }

    /// <summary>The masks of <paramref name="samples"/> (block mask or causal, as each sample says), padded to the longest: boolean <c>[B, S, S]</c>.</summary>
    public static Tensor Allowed(IReadOnlyList<TrainingSample> samples, Device device)
    {
        ArgumentNullException.ThrowIfNull(samples);
        return Allowed([.. samples.Select(s => s.Length)], [.. samples.Select(s => s.BlockAttention ? s.LocalBlockLengths : (IReadOnlyList<int>)[])], device);
    }

    /// <summary>
    /// The masks of a batch of sequences, right-padded to the longest, as boolean <c>[B, S, S]</c>:
    /// sequence b's rows and columns below <paramref name="lengths"/>[b] are its own mask
    /// (<paramref name="localBlockLengths"/>[b] as in <see cref="Allowed(int, IReadOnlyList{int}, Device)"/>);
    /// a padding row sees only itself (so its softmax stays finite) and no real row sees padding.
    /// </summary>
    public static Tensor Allowed(IReadOnlyList<int> lengths, IReadOnlyList<IReadOnlyList<int>> localBlockLengths, Device device)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentNullException.ThrowIfNull(localBlockLengths);
        if (lengths.Count == 0 || lengths.Count != localBlockLengths.Count)
        {
            throw new ArgumentException($"{lengths.Count} lengths and {localBlockLengths.Count} block lists: one of each per sequence, at least one sequence");
        }

        int width = lengths.Max();
        var firstVisible = new long[lengths.Count * (long)width];
        for (int b = 0; b < lengths.Count; b++)
        {
            FirstVisible(lengths[b], localBlockLengths[b], width).CopyTo(firstVisible, b * (long)width);
        }

        using var scope = NewDisposeScope();
        var columns = Scalars.Arange(0, width, device: device).view(1, 1, width);
        var rows = Scalars.Arange(0, width, device: device).view(1, width, 1);
        var first = tensor(firstVisible, ScalarType.Int64, device).view(lengths.Count, width, 1);
        return columns.le(rows).logical_and(columns.ge(first)).MoveToOuterDisposeScope();
    }

    // Each row's first visible column: its block's start for local blocks, 0 afterwards, and the row itself past the sequence (padding).
    private static long[] FirstVisible(int length, IReadOnlyList<int> localBlockLengths, int width)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentNullException.ThrowIfNull(localBlockLengths);
        var firstVisible = new long[width];
        long start = 0;
        foreach (int blockLength in localBlockLengths)
        {
            long end = start + blockLength;
            if (blockLength < 0 || end >= length)
            {
                throw new ArgumentException($"local blocks of {localBlockLengths.Sum(b => (long)b)} tokens leave no final block in {length} tokens", nameof(localBlockLengths));
            }

            for (long row = start; row < end; row++)
            {
                firstVisible[row] = start;
            }

            start = end;
        }

        for (int row = length; row < width; row++)
        {
            firstVisible[row] = row;
        }

        return firstVisible;
    }
}
