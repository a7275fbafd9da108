using BlockAttention.Llama;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Forward;

/// <summary><see cref="DecodeAttention"/>: one token's grouped-query attention over a cache, against softmax(q kᵀ / √d) v in float64.</summary>
public class DecodeAttentionTests
{
    [Theory]
    [InlineData(9, 3, 64, 1100)] // SmolLM2-135M's heads at a 1K-token cache
    [InlineData(4, 2, 8, 1)]
    [InlineData(6, 2, 24, 37)]
    [InlineData(4, 4, 16, 9)]
    public void Matches_softmax_attention_in_float64(int heads, int kvHeads, int headDim, int length)
    {
        using var scope = NewDisposeScope();
        var generator = new TorchSharp.torch.Generator(3, CPU);
        // Laid out as KvCache keeps a layer: [kvHeads, capacity, headDim], the first positions in use.
        var keyBuffer = randn([kvHeads, length + 5, headDim], generator: generator);
        var valueBuffer = randn([kvHeads, length + 5, headDim], generator: generator);
        var rows = randn([1, heads + 2 * kvHeads, headDim], generator: generator); // a fused q/k/v row
        var queries = rows[0].narrow(0, 0, heads);
        var keys = keyBuffer.narrow(1, 0, length);
        var values = valueBuffer.narrow(1, 0, length);
        if (!DecodeAttention.CanRun(queries, keys, values))
        {
            RowDot.IsSupported.Should().BeFalse("only a CPU without AVX2 and FMA falls back to libtorch's attention");
            return;
        }

        var output = zeros(heads * headDim);
        DecodeAttention.Attend(queries, keys, values, output);

        int group = heads / kvHeads;
        var q = queries.to(ScalarType.Float64).view(kvHeads, group, headDim);
        var k = keys.to(ScalarType.Float64);
        var v = values.to(ScalarType.Float64);
        var weights = q.matmul(k.transpose(1, 2)).div(Math.Sqrt(headDim)).softmax(-1); // [kv, group, length]
        var expected = weights.matmul(v).reshape(heads * headDim);
        double error = output.to(ScalarType.Float64).sub(expected).abs().max().item<double>();
        error.Should().BeLessThan(1e-5);
    }
}
