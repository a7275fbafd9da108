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
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        ArgumentNullException.ThrowIfNull(localBlockLengths);
        // Each row's first visible column: its block's start for local blocks, 0 afterwards.
        var firstVisible = new long[length];
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

        using var scope = NewDisposeScope();
        var columns = Scalars.Arange(0, length, device: device).unsqueeze(0);
        var rows = Scalars.Arange(0, length, device: device).unsqueeze(1);
        var first = tensor(firstVisible, ScalarType.Int64, device).unsqueeze(1);
        return columns.le(rows).logical_and_(columns.ge(first)).MoveToOuterDisposeScope();
    }
}
