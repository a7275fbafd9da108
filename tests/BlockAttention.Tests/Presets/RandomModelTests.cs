using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Presets;

/// <summary>Presets and random-weight models: the shapes the issue names, finite logits, fingerprints that identify the weights.</summary>
public class RandomModelTests
{
    // A few layers of SmolLM2's shape: the code paths of the full preset, at a fraction of its cost.
    private static readonly LlamaConfig s_small = LlamaPresets.Get(LlamaPresets.SmolLM2_135M) with { NumHiddenLayers = 2, VocabSize = 1024 };

    [Fact]
    public void Presets_have_the_published_shapes()
    {
        var llama8b = LlamaPresets.Get("llama-3.1-8b");
        (llama8b.HiddenSize, llama8b.NumHiddenLayers, llama8b.NumAttentionHeads, llama8b.NumKeyValueHeads, llama8b.IntermediateSize, llama8b.VocabSize)
            .Should().Be((4096, 32, 32, 8, 14336, 128256));
        llama8b.Rope.Should().BeEquivalentTo(new RopeSettings
        {
            Theta = 500000, Type = RopeType.Llama3, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8192,
        });
        llama8b.TieWordEmbeddings.Should().BeFalse();

        var llama1b = LlamaPresets.Get("LLAMA-3.2-1B");
        (llama1b.HiddenSize, llama1b.NumHiddenLayers, llama1b.HeadDim, llama1b.IntermediateSize, llama1b.TieWordEmbeddings, llama1b.Rope.Factor)
            .Should().Be((2048, 16, 64, 8192, true, 32.0));

        var smol = LlamaPresets.Get("smollm2-135m");
        (smol.HiddenSize, smol.NumHiddenLayers, smol.NumAttentionHeads, smol.NumKeyValueHeads, smol.IntermediateSize, smol.VocabSize, smol.Rope.Theta, smol.Rope.Type)
            .Should().Be((576, 30, 9, 3, 1536, 49152, 100000.0, RopeType.Default));
    }

    [Fact]
    public void An_unknown_preset_is_refused_with_the_known_names()
    {
        var act = () => LlamaModel.CreateRandom("llama-9");
        act.Should().Throw<ArgumentException>().WithMessage("*llama-9*smollm2-135m*");
    }

    [Fact]
    public void A_random_model_runs_and_its_fingerprint_follows_the_seed()
    {
        using var scope = NewDisposeScope();
        using var first = LlamaModel.CreateRandom(s_small, seed: 1);
        using var same = LlamaModel.CreateRandom(s_small, seed: 1);
        using var other = LlamaModel.CreateRandom(s_small, seed: 2);

        first.Tokenizer.Should().BeNull();
        first.Info.Fingerprint.Should().Be(same.Info.Fingerprint).And.NotBe(other.Info.Fingerprint);
        using var cache = first.CreateCache(8);
        using var logits = first.Forward([1, 2, 3, 4, 5, 6, 7, 8], cache, logitsToKeep: 1)!;
        using var sameCache = same.CreateCache(8);
        using var sameLogits = same.Forward([1, 2, 3, 4, 5, 6, 7, 8], sameCache, logitsToKeep: 1)!;

        logits.shape.Should().Equal(1, 1024);
        logits.isfinite().all().item<bool>().Should().BeTrue();
        sameLogits.eq(logits).all().item<bool>().Should().BeTrue("the same seed gives the same weights");
    }

    [Fact]
    public void Random_weights_are_small_and_norms_are_one_so_bfloat16_stays_finite()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaModel.CreateRandom(s_small, new LlamaLoadOptions { DType = ScalarType.BFloat16 });
        using var cache = model.CreateCache(64);
        using var logits = model.Forward(Enumerable.Range(10, 64).ToArray(), cache, logitsToKeep: 4)!;

        logits.isfinite().all().item<bool>().Should().BeTrue();
        model.Info.Fingerprint.Should().Contain("bfloat16");
    }
}
