using BlockAttention.Llama;
using Xunit;

namespace BlockAttention.Tests.Forward;

/// <summary>The CUDA batched step's row layout and padding (pure host logic; the GPU part is checked by the bench).</summary>
public sealed class CudaBatchLayoutTests
{
    [Fact]
    public void OneTokenStepsComeFirstInStepOrderThenTheOthers()
    {
        var (first, decode) = LlamaModel.BatchRowOrder([50, 1, 3, 1, 1], decodeTogether: true);
        Assert.Equal([1, 3, 4], decode);
        Assert.Equal(0, first[1]);
        Assert.Equal(1, first[3]);
        Assert.Equal(2, first[4]);
        Assert.Equal(3, first[0]);
        Assert.Equal(53, first[2]);
    }

    [Fact]
    public void RowsPartitionTheBatchWithoutGapsOrOverlaps()
    {
        var random = new Random(7);
        for (int trial = 0; trial < 200; trial++)
        {
            var counts = Enumerable.Range(0, 1 + random.Next(20)).Select(_ => random.Next(3) == 0 ? 1 + random.Next(60) : 1).ToArray();
            foreach (bool together in new[] { true, false })
            {
                var (first, decode) = LlamaModel.BatchRowOrder(counts, together);
                var covered = new bool[counts.Sum()];
                for (int i = 0; i < counts.Length; i++)
                {
                    for (int r = 0; r < counts[i]; r++)
                    {
                        Assert.False(covered[first[i] + r]);
                        covered[first[i] + r] = true;
                    }
                }

                Assert.All(covered, Assert.True);
                Assert.Equal(together ? counts.Count(c => c == 1) : 0, decode.Count);
                for (int j = 0; j < decode.Count; j++)
                {
                    Assert.Equal(j, first[decode[j]]); // the decode launch reads sequence j at row j
                }
            }
        }
    }

    [Theory]
    [InlineData(1, 64, 64)]
    [InlineData(64, 64, 64)]
    [InlineData(65, 64, 128)]
    [InlineData(50, 64, 64)]
    [InlineData(114, 64, 128)]
    [InlineData(3, 1, 3)]
    public void RowsArePaddedToWholeTiles(int rows, int tile, int padded) =>
        Assert.Equal(padded, LlamaModel.PaddedRows(rows, tile));

    [Theory]
    [InlineData(null, 64)]
    [InlineData("", 64)]
    [InlineData("abc", 64)]
    [InlineData("0", 64)]
    [InlineData("-3", 64)]
    [InlineData("32", 32)]
    [InlineData("128", 128)]
    public void BatchRowsSettingFallsBackTo64(string? value, int rows) =>
        Assert.Equal(rows, LlamaModel.ParseBatchRows(value));
}
