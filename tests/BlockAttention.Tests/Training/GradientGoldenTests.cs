using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Fixtures;
using BlockAttention.Training.Data;
using BlockAttention.Training.Modeling;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Training;

/// <summary>
/// One training step's loss and every gradient against transformers' (LlamaForCausalLM in float32
/// with the same 4D block mask and position ids), made by eng/training/make_grad_golden.py.
/// </summary>
public sealed class GradientGoldenTests
{
    private const double Tolerance = 1e-4;

    [Theory]
    [InlineData("tiny-llama2")]
    [InlineData("tiny-llama3")]
    public void Loss_and_every_gradient_match_transformers(string name)
    {
        string folder = Path.Combine(FixturePaths.Root, "training");
        var samples = TrainingSampleFile.Read(Path.Combine(folder, $"batch-{name}.jsonl"));
        using var model = TrainableLlama.Load(FixturePaths.Model(name));
        using var golden = SafetensorsFile.Open(Path.Combine(folder, $"grad-golden-{name}.safetensors"));

        int count = samples.Sum(s => s.LossTokens);
        double loss = 0;
        foreach (var sample in samples)
        {
            using var scope = NewDisposeScope();
            var sum = model.LossSum(sample);
            loss += sum.item<float>();
            sum.div(count).backward();
        }

        using var expectedLoss = Read(golden, "loss");
        double expected = expectedLoss.item<float>();
        (loss / count).Should().BeApproximately(expected, Tolerance * Math.Abs(expected));

        golden.TensorNames.Count(n => n.StartsWith("grad.", StringComparison.Ordinal)).Should().Be(model.Parameters.Count);
        foreach (var (parameter, weight) in model.Parameters)
        {
            using var scope = NewDisposeScope();
            var grad = weight.grad!;
            var golden1 = Read(golden, "grad." + parameter);
            if (golden.Contains("rows." + parameter))
            {
                // The large tied embedding: selected rows, plus the column sums over every row.
                Check(grad.index_select(0, Read(golden, "rows." + parameter).to(ScalarType.Int64)), golden1, parameter);
                Check(grad.to(ScalarType.Float64).sum(dim: 0L).to(ScalarType.Float32), Read(golden, "colsum." + parameter), parameter + " (column sums)");
            }
            else
            {
                Check(grad, golden1, parameter);
            }
        }
    }

    // Relative error in the L2 norm, and no element off by more than the tolerance times the largest gradient.
    private static void Check(Tensor actual, Tensor expected, string name)
    {
        actual.shape.Should().Equal(expected.shape, name);
        double scale = expected.norm().item<float>();
        scale.Should().BeGreaterThan(0, $"{name}: a zero golden gradient checks nothing");
        double error = actual.sub(expected).norm().item<float>();
        error.Should().BeLessThanOrEqualTo(Tolerance * scale, $"{name}: |grad - golden| / |golden| = {error / scale:E2}");
        double largest = expected.abs().max().item<float>();
        ((double)actual.sub(expected).abs().max().item<float>()).Should().BeLessThanOrEqualTo(Tolerance * largest, name);
    }

    private static Tensor Read(SafetensorsFile file, string name)
    {
        var info = file.GetInfo(name);
        var result = empty([.. info.Shape], ScalarType.Float32);
        file.ReadInto(name, result.bytes);
        return result;
    }
}
