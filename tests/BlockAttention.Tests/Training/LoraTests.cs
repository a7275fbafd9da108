using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Fixtures;
using BlockAttention.Training;
using BlockAttention.Training.Data;
using BlockAttention.Training.Modeling;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Training;

public sealed class LoraTests
{
    [Fact]
    public void Lora_steps_change_only_the_adapters_and_the_saved_checkpoint_is_base_plus_scaled_BA()
    {
        var samples = TrainingSampleFile.Read(Path.Combine(FixturePaths.Root, "training", "batch-tiny-llama2.jsonl"));
        string output = Path.Combine(Path.GetTempPath(), $"lora-{Guid.NewGuid():N}");
        try
        {
            using var model = TrainableLlama.Load(FixturePaths.Model("tiny-llama2"));
            var lora = new LoraOptions { Rank = 4, Alpha = 12, Targets = ["q_proj", "k_proj", "v_proj", "o_proj"], Seed = 3 };
            model.EnableLora(lora);
            var baseWeights = model.Parameters.ToDictionary(p => p.Key, p => p.Value.detach().clone());
            var initialAdapters = model.Adapters.ToDictionary(p => p.Key, p => p.Value.detach().clone());
            // q/k/v/o of each of the 3 layers, A and B each.
            model.Adapters.Count.Should().Be(model.Config.NumHiddenLayers * 4 * 2);
            model.Adapters.Keys.Should().Contain("model.layers.0.self_attn.q_proj.lora_A.weight").And.Contain("model.layers.2.self_attn.o_proj.lora_B.weight");

            // Two steps: B starts at zero, so A's gradient is zero until B has moved once.
            new Trainer(model, new TrainerOptions { Steps = 2, BatchSize = 2, LearningRate = 1e-2, WarmupRatio = 0, Lora = lora }).Train(samples, null, output);

            foreach (var (name, weight) in model.Parameters)
            {
                weight.grad.Should().BeNull(name);
                Same(weight, baseWeights[name]).Should().BeTrue($"{name} is frozen under LoRA");
            }

            foreach (var (name, adapter) in model.Adapters)
            {
                Same(adapter, initialAdapters[name]).Should().BeFalse($"{name} trains");
            }

            // The saved weights, computed independently in float64: W + alpha / rank * B A on the adapted projections, W elsewhere.
            using var saved = SafetensorsFile.Open(Path.Combine(output, "model.safetensors"));
            saved.TensorNames.Should().BeEquivalentTo(model.Parameters.Keys);
            foreach (var (name, weight) in baseWeights)
            {
                using var scope = NewDisposeScope();
                var actual = empty([.. saved.GetInfo(name).Shape], ScalarType.Float32);
                saved.ReadInto(name, actual.bytes);
                string projection = name[..^".weight".Length];
                if (model.Adapters.TryGetValue(projection + ".lora_A.weight", out var a))
                {
                    var b = model.Adapters[projection + ".lora_B.weight"];
                    var expected = weight.to(ScalarType.Float64).add(b.detach().to(ScalarType.Float64).matmul(a.detach().to(ScalarType.Float64)).mul(12.0 / 4));
                    double error = actual.to(ScalarType.Float64).sub(expected).abs().max().item<double>();
                    error.Should().BeLessThan(1e-6, name);
                    actual.to(ScalarType.Float64).sub(weight.to(ScalarType.Float64)).abs().max().item<double>().Should().BeGreaterThan(1e-5, $"{name} carries the update");
                }
                else
                {
                    Same(actual, weight).Should().BeTrue(name);
                }
            }

            // The merged checkpoint is an ordinary Llama: the inference loader gives the adapted model's logits.
            int[] tokens = [1, 5, 9, 17, 33, 65, 129, 257];
            using var mask = TrainingMask.Allowed(tokens.Length, [], CPU);
            using var noGrad = no_grad();
            using var ours = model.Forward(tokens, mask);
            using var loaded = LlamaModel.Load(output);
            using var cache = loaded.CreateCache(tokens.Length);
            using var logits = loaded.Forward(tokens, cache, logitsToKeep: tokens.Length)!;
            GoldenTensors.MaxAbsDiff(logits, ours).Should().BeLessThan(1e-4f);
            File.Exists(Path.Combine(output, "adapters.safetensors")).Should().BeTrue();
            foreach (var t in baseWeights.Values.Concat(initialAdapters.Values))
            {
                t.Dispose();
            }
        }
        finally
        {
            if (Directory.Exists(output))
            {
                Directory.Delete(output, recursive: true);
            }
        }
    }

    private static bool Same(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.shape.SequenceEqual(b.shape) && a.detach().ne(b.detach()).sum().item<long>() == 0;
    }

    [Fact]
    public void Unknown_targets_and_a_zero_rank_are_refused()
    {
        var act = () => new LoraOptions { Targets = ["q_proj", "qkv"] }.Validate();
        act.Should().Throw<ArgumentException>().WithMessage("*'qkv'*");
        var zero = () => new TrainerOptions { Lora = new LoraOptions { Rank = 0 } }.Validate();
        zero.Should().Throw<ArgumentOutOfRangeException>();
    }
}
