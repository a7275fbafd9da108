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
    [InlineData("tiny-llama2", false)]
    [InlineData("tiny-llama3", false)]
    [InlineData("tiny-llama2", true)]
    [InlineData("tiny-llama3", true)]
    public void Loss_and_every_gradient_match_transformers(string name, bool onePaddedPass)
    {
        string folder = Path.Combine(FixturePaths.Root, "training");
        var samples = TrainingSampleFile.Read(Path.Combine(folder, $"batch-{name}.jsonl"));
        using var model = TrainableLlama.Load(FixturePaths.Model(name));
        using var golden = SafetensorsFile.Open(Path.Combine(folder, $"grad-golden-{name}.safetensors"));

        int count = samples.Sum(s => s.LossTokens);
        double loss = 0;
        // One sample per pass, or all of them in one batched pass.
        foreach (var chunk in onePaddedPass ? [samples] : samples.Select(s => (IReadOnlyList<TrainingSample>)[s]))
        {
            using var scope = NewDisposeScope();
            var sum = model.LossSum(chunk);
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

    [Fact]
    public void One_padded_pass_over_samples_of_different_lengths_equals_one_pass_per_sample()
    {
        // The per-sample pass is the one checked against transformers above; padding must change nothing.
        var golden = TrainingSampleFile.Read(Path.Combine(FixturePaths.Root, "training", "batch-tiny-llama2.jsonl"));
        var shorter = golden[1] with { InputIds = golden[1].InputIds[..22], Labels = golden[1].Labels[..22] };
        var shortBlock = golden[0] with { InputIds = golden[0].InputIds[..24], Labels = golden[0].Labels[..24] };
        IReadOnlyList<TrainingSample> samples = [shorter, golden[0], shortBlock, golden[1]];
        using var model = TrainableLlama.Load(FixturePaths.Model("tiny-llama2"));
        var (lossOne, gradsOne) = LossAndGradients(model, samples.Select(s => (IReadOnlyList<TrainingSample>)[s]));
        var (lossPadded, gradsPadded) = LossAndGradients(model, [samples]);
        lossPadded.Should().BeApproximately(lossOne, 1e-5 * Math.Abs(lossOne));
        foreach (var (name, grad) in gradsOne)
        {
            Check(gradsPadded[name], grad, name);
        }

        foreach (var g in gradsOne.Values.Concat(gradsPadded.Values))
        {
            g.Dispose();
        }
    }

    private static (double Loss, Dictionary<string, Tensor> Grads) LossAndGradients(TrainableLlama model, IEnumerable<IReadOnlyList<TrainingSample>> passes)
    {
        foreach (var p in model.Parameters.Values)
        {
            p.grad?.zero_();
        }

        double loss = 0;
        foreach (var pass in passes)
        {
            using var scope = NewDisposeScope();
            var sum = model.LossSum(pass);
            loss += sum.item<float>();
            sum.backward();
        }

        return (loss, model.Parameters.ToDictionary(p => p.Key, p => p.Value.grad!.clone()));
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
