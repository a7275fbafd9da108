using BlockAttention.Attention;
using BlockAttention.Llama;
using BlockAttention.Models;
using BlockAttention.Tests.Fixtures;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Forward;

/// <summary>
/// <see cref="LlamaModel.ForwardBatch"/>: each sequence's logits and cache writes in a batch equal,
/// bit for bit, those of the same step run alone; and agree with the one-sequence forward pass.
/// </summary>
public class BatchedForwardTests
{
    public static TheoryData<string> Models => new() { "tiny-llama3", "tiny-llama2", "random" };

    [Theory]
    [MemberData(nameof(Models))]
    public void Every_sequence_of_a_batch_gets_exactly_what_it_gets_alone(string name)
    {
        using var owned = name == "random" ? TinyRandomModels.Create(seed: 5) : null;
        var model = owned ?? TestModels.Get(name);
        int vocab = model.Info.VocabSize;
        // Sequences with different histories, and steps of 1 token (decoding) or several (a final-block chunk).
        int[] history = [3, 17, 1, 29, 8, 12, 40, 5, 21];
        int[] stepLengths = [1, 1, 7, 1, 3, 1, 1, 16, 1];
        var tokens = history.Select((h, i) => TinyRandomModels.Tokens(h + stepLengths[i], seed: 100 + i).Select(t => t % vocab).ToArray()).ToArray();

        // Batches of every size from 1 to 9, over different mixes of the sequences.
        foreach (int size in new[] { 1, 2, 3, 5, 9 })
        {
            var members = Enumerable.Range(0, size).Select(i => (i * 4 + size) % history.Length).Distinct().ToArray();
            var batchCaches = members.Select(m => Prefilled(model, tokens[m], history[m])).ToArray();
            var steps = members.Select((m, j) => new ForwardStep(tokens[m].AsMemory(history[m]), batchCaches[j], LogitsToKeep: stepLengths[m] > 1 ? 2 : 1)).ToList();
            using var batched = model.ForwardBatch(steps)!;

            int row = 0;
            for (int j = 0; j < members.Length; j++)
            {
                int m = members[j];
                using var aloneCache = Prefilled(model, tokens[m], history[m]);
                using var alone = model.ForwardBatch([steps[j] with { Cache = aloneCache }])!;
                using var rows = batched.narrow(0, row, steps[j].LogitsToKeep);
                Bits(rows).Should().Equal(Bits(alone), $"{name}: sequence {m} in a batch of {members.Length} (logits)");
                Bits(CacheContents(batchCaches[j])).Should().Equal(Bits(CacheContents(aloneCache)), $"{name}: sequence {m} in a batch of {members.Length} (cache)");
                batchCaches[j].Length.Should().Be(tokens[m].Length);

                // The one-sequence forward pass (unpadded products) agrees to float32 rounding.
                using var plainCache = Prefilled(model, tokens[m], history[m]);
                using var plain = model.Forward(tokens[m].AsSpan(history[m]), plainCache, steps[j].LogitsToKeep)!;
                using var difference = plain.sub(alone).abs().max();
                difference.item<float>().Should().BeLessThan(1e-3f, $"{name}: sequence {m} against Forward");
                row += steps[j].LogitsToKeep;
            }

            foreach (var cache in batchCaches)
            {
                cache.Dispose();
            }
        }
    }

    [Fact]
    public void Two_steps_on_one_cache_are_refused()
    {
        var model = TestModels.Get("tiny-llama2");
        using var cache = model.CreateCache(8);

        var act = () => model.ForwardBatch([new ForwardStep(new[] { 1 }, cache, 1), new ForwardStep(new[] { 2 }, cache, 1)]);

        act.Should().Throw<ArgumentException>().WithMessage("*same cache*");
        cache.Length.Should().Be(0, "nothing ran");
    }

    [Fact]
    public void A_step_with_a_token_outside_the_vocabulary_is_refused_before_any_work()
    {
        var model = TestModels.Get("tiny-llama2");
        using var first = model.CreateCache(8);
        using var second = model.CreateCache(8);

        var act = () => model.ForwardBatch([new ForwardStep(new[] { 1 }, first, 1), new ForwardStep(new[] { model.Info.VocabSize }, second, 1)]);

        act.Should().Throw<ArgumentOutOfRangeException>();
        first.Length.Should().Be(0);
    }

    private static KvCache Prefilled(LlamaModel model, int[] tokens, int length)
    {
        var cache = model.CreateCache(tokens.Length + 4);
        model.Forward(tokens.AsSpan(0, length), cache, logitsToKeep: 0);
        return cache;
    }

    private static Tensor CacheContents(KvCache cache) => cat([cache.AllKeys.narrow(2, 0, cache.Length).flatten(), cache.AllValues.narrow(2, 0, cache.Length).flatten()]);

    private static int[] Bits(Tensor tensor)
    {
        using var cpu = tensor.to(ScalarType.Float32, CPU).contiguous();
        return [.. cpu.data<float>().ToArray().Select(BitConverter.SingleToInt32Bits)];
    }
}
