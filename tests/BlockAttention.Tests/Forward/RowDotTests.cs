using BlockAttention.Llama;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Forward;

/// <summary>
/// <see cref="RowDot"/>, the CPU float32 product of batched steps: each row's outputs are the same
/// bits whatever else is in the call, and they are <c>x Wᵀ</c> (against a float64 product).
/// </summary>
public class RowDotTests
{
    // Widths with and without a tail past the last 8-wide slice; weight rows with and without a
    // tail past the last block of 4 (and enough of them to split over threads).
    [Theory]
    [InlineData(64, 12)]
    [InlineData(77, 13)]
    [InlineData(5, 3)]
    [InlineData(72, 259)]
    public void A_row_gets_the_same_bits_in_any_call_and_matches_a_float64_product(int width, int outputs)
    {
        if (!RowDot.IsSupported)
        {
            // Without AVX2 and FMA the batched pass keeps the padded GEMM (BatchedForwardTests covers it).
            using var x = ones(1, width);
            RowDot.CanRun(x, ones(outputs, width)).Should().BeFalse();
            return;
        }

        using var scope = NewDisposeScope();
        var generator = new TorchSharp.torch.Generator(7, CPU);
        var weight = randn([outputs, width], generator: generator);
        var rows = randn([18, width], generator: generator);
        var alone = RowDot.Linear(rows.narrow(0, 0, 1), weight, threads: 1);

        // The float64 product, rounded once: the kernel's float32 sums stay within rounding of it.
        var expected = rows.narrow(0, 0, 1).to(ScalarType.Float64).matmul(weight.to(ScalarType.Float64).t());
        var scale = rows.narrow(0, 0, 1).abs().to(ScalarType.Float64).matmul(weight.abs().to(ScalarType.Float64).t());
        var error = alone.to(ScalarType.Float64).sub(expected).abs().div(scale.add(1e-30)).max().item<double>();
        error.Should().BeLessThan(1e-5, "each output is a float32 dot product of its row and weight row");

        foreach (int count in new[] { 1, 2, 3, 4, 5, 8, 9, 17 })
        {
            for (int place = 0; place < count; place++)
            {
                var batch = rows.narrow(0, 1, count).clone();
                batch[place].copy_(rows[0]);
                foreach (int threads in new[] { 1, 2, 3 })
                {
                    var product = RowDot.Linear(batch, weight, threads);
                    Bits(product[place]).Should().Equal(Bits(alone[0]), $"row at {place} of {count}, {threads} thread(s)");
                }
            }
        }
    }

    [Fact]
    public void Strided_rows_are_read_as_their_values()
    {
        if (!RowDot.IsSupported)
        {
            return; // see above: nothing of RowDot runs here
        }

        using var scope = NewDisposeScope();
        var generator = new TorchSharp.torch.Generator(11, CPU);
        var weight = randn([9, 40], generator: generator);
        var wide = randn([6, 100], generator: generator);
        var view = wide.narrow(1, 30, 40); // rows 100 apart
        var product = RowDot.Linear(view, weight, threads: 1);
        var contiguous = RowDot.Linear(view.contiguous(), weight, threads: 1);
        Bits(product).Should().Equal(Bits(contiguous));
    }

    private static int[] Bits(Tensor tensor)
    {
        using var contiguous = tensor.contiguous();
        return [.. contiguous.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits)];
    }
}
