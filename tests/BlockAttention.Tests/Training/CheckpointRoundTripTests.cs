using BlockAttention.Attention;
using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Fixtures;
using BlockAttention.Training;
using BlockAttention.Training.Data;
using BlockAttention.Training.Modeling;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Training;

public sealed class CheckpointRoundTripTests
{
    [Fact]
    public void Checkpoint_trained_by_blockattn_train_gives_transformers_logits_in_our_loader()
    {
        // trained-tiny-llama2 was written by `blockattn train` from tiny-llama2; transformers-logits.safetensors
        // holds LlamaForCausalLM's logits of that checkpoint (eng/training/make_grad_golden.py logits).
        string folder = Path.Combine(FixturePaths.Root, "training", "trained-tiny-llama2");
        using var golden = SafetensorsFile.Open(Path.Combine(folder, "..", "transformers-logits-trained-tiny-llama2.safetensors"));
        var idsInfo = golden.GetInfo("input_ids");
        using var ids = empty([.. idsInfo.Shape], ScalarType.Float32); // token ids stored as float32 (exact)
        golden.ReadInto("input_ids", ids.bytes);
        using var expected = empty([.. golden.GetInfo("logits").Shape], ScalarType.Float32);
        golden.ReadInto("logits", expected.bytes);

        using var model = LlamaModel.Load(folder);
        int[] tokens = ids.data<float>().Select(i => (int)i).ToArray();
        using var cache = model.CreateCache(tokens.Length);
        using var logits = model.Forward(tokens, cache, logitsToKeep: tokens.Length)!;
        GoldenTensors.MaxAbsDiff(logits, expected).Should().BeLessThan(1e-4f);

        // The trained weights differ from the ones training started from.
        using var original = LlamaModel.Load(FixturePaths.Model("tiny-llama2"));
        using var originalCache = original.CreateCache(tokens.Length);
        using var before = original.Forward(tokens, originalCache, logitsToKeep: tokens.Length)!;
        GoldenTensors.MaxAbsDiff(before, expected).Should().BeGreaterThan(1e-3f);
    }

    [Theory]
    [InlineData("tiny-llama2")]
    [InlineData("tiny-llama3")]
    public void Saved_checkpoint_loads_in_our_loader_with_the_trainable_forward_logits(string name)
    {
        string output = Path.Combine(Path.GetTempPath(), $"ckpt-{Guid.NewGuid():N}");
        try
        {
            using var trainable = TrainableLlama.Load(FixturePaths.Model(name));
            CheckpointSaver.Save(trainable, output);
            int[] tokens = [1, 5, 9, 17, 33, 65, 129, 257];
            using var mask = TrainingMask.Allowed(tokens.Length, [], CPU);
            using var noGrad = no_grad();
            using var ours = trainable.Forward(tokens, mask);

            using var loaded = LlamaModel.Load(output);
            using var cache = loaded.CreateCache(tokens.Length);
            using var logits = loaded.Forward(tokens, cache, logitsToKeep: tokens.Length)!;
            GoldenTensors.MaxAbsDiff(logits, ours).Should().BeLessThan(1e-4f);
            using var checkpoint = CheckpointFolder.Open(output);
            checkpoint.Contains("lm_head.weight").Should().Be(!checkpoint.Config.TieWordEmbeddings);
        }
        finally
        {
            if (Directory.Exists(output))
            {
                Directory.Delete(output, recursive: true);
            }
        }
    }

    [Fact]
    public void Block_mask_forward_equals_block_mode_inference()
    {
        // DESIGN section 2 item 7: the one-pass masked forward is the block-mode computation.
        using var trainable = TrainableLlama.Load(FixturePaths.Model("tiny-llama2"));
        using var model = LlamaModel.Load(FixturePaths.Model("tiny-llama2"));
        int[] block0 = [3, 4, 5, 6], block1 = [7, 8, 9], final = [10, 11, 12, 13, 14];
        using var mask = TrainingMask.Allowed(12, [4, 3], CPU);
        using var noGrad = no_grad();
        using var ours = trainable.Forward([.. block0, .. block1, .. final], mask);

        using var cache = model.CreateCache(12);
        using (var c0 = model.CreateCache(4))
        using (var c1 = model.CreateCache(3))
        {
            model.Forward(block0, c0, 0);
            model.Forward(block1, c1, 0);
            for (int layer = 0; layer < 3; layer++)
            {
                using var scope = NewDisposeScope();
                var k0 = c0.AllKeys[layer].narrow(1, 0, 4);
                var v0 = c0.AllValues[layer].narrow(1, 0, 4);
                var k1 = c1.AllKeys[layer].narrow(1, 0, 3);
                var v1 = c1.AllValues[layer].narrow(1, 0, 3);
                var rotated = model.Rotary.RotateBy(k1, 4);
                var (keys, values) = cache.Append(layer, cat([k0, rotated], 1), cat([v0, v1], 1));
                keys.Dispose();
                values.Dispose();
            }
        }

        cache.Advance(7);
        using var logits = model.Forward(final, cache, logitsToKeep: final.Length)!;
        GoldenTensors.MaxAbsDiff(logits, ours.narrow(0, 7, 5)).Should().BeLessThan(1e-4f);
    }

    [Fact]
    public void Resuming_from_a_checkpoint_continues_exactly()
    {
        var samples = TrainingSampleFile.Read(Path.Combine(FixturePaths.Root, "training", "batch-tiny-llama2.jsonl"));
        string straight = Path.Combine(Path.GetTempPath(), $"train-{Guid.NewGuid():N}");
        string resumed = Path.Combine(Path.GetTempPath(), $"train-{Guid.NewGuid():N}");
        try
        {
            var options = new TrainerOptions { Steps = 4, BatchSize = 3, LearningRate = 1e-2, WarmupRatio = 0.25, WeightDecay = 0.1 };
            double first;
            using (var model = TrainableLlama.Load(FixturePaths.Model("tiny-llama2")))
            {
                first = new Trainer(model, options).Evaluate(samples);
                new Trainer(model, options).Train(samples, null, straight);
            }

            using (var model = TrainableLlama.Load(FixturePaths.Model("tiny-llama2")))
            {
                new Trainer(model, new TrainerOptions { Steps = 4, BatchSize = 3, LearningRate = 1e-2, WarmupRatio = 0.25, WeightDecay = 0.1, SaveEvery = 2 })
                    .Train(samples, null, resumed, _ => throw new OperationCanceledException("stop after the checkpoint"));
            }
        }
        catch (OperationCanceledException)
        {
        }

        try
        {
            File.ReadAllText(Path.Combine(resumed, "trainer_state.json")).Should().Contain("\"Step\":2");
            using (var model = TrainableLlama.Load(resumed))
            {
                new Trainer(model, new TrainerOptions { Steps = 4, BatchSize = 3, LearningRate = 1e-2, WarmupRatio = 0.25, WeightDecay = 0.1 }).Train(samples, null, resumed);
            }

            using var a = TrainableLlama.Load(straight);
            using var b = TrainableLlama.Load(resumed);
            foreach (var (name, weight) in a.Parameters)
            {
                GoldenTensors.MaxAbsDiff(b.Parameters[name], weight).Should().Be(0, name);
            }

            // Training moved the loss: the checkpoint is not the starting point.
            using var start = TrainableLlama.Load(FixturePaths.Model("tiny-llama2"));
            new Trainer(a, new TrainerOptions()).Evaluate(samples).Should().BeLessThan(new Trainer(start, new TrainerOptions()).Evaluate(samples));
        }
        finally
        {
            foreach (var dir in new[] { straight, resumed }.Where(Directory.Exists))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
