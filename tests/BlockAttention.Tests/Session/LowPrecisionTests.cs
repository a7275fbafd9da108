using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Llama;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Session;

/// <summary>The bfloat16 path (the GPU's dtype) on the CPU: mixed-precision re-encoding and the fused attention path.</summary>
public class LowPrecisionTests
{
    private static readonly Lazy<LlamaModel> s_bf16 = new(() =>
        LlamaModel.Load(FixturePaths.Model("tiny-llama3"), new LlamaLoadOptions { DType = ScalarType.BFloat16 }));

    [Fact]
    public void Bfloat16_block_logits_stay_close_to_the_float32_reference()
    {
        var golden = GoldenCase.Get("tiny-llama3", "rag");
        var model = s_bf16.Value;
        using var cache = model.CreateCache(golden.TotalLength);
        var blocks = golden.Blocks[..^1].Select(tokens => CachedVersusOnePassTests.Encode(model, tokens)).ToList();

        BlockAttention.Attention.BlockAssembler.Assemble(blocks, model.Rotary, cache);
        using var logits = model.Forward(golden.Blocks[^1], cache, golden.LogitsKeptPositions.Length)!;
        blocks.ForEach(b => b.Release());
        using var expected = GoldenTensors.Read("tiny-llama3", "rag.block.logits");
        using var scale = expected.abs().max();

        // The CLI's documented bfloat16 rule (blockattn verify --dtype bfloat16): 0.15 x max(1, scale).
        double diff = GoldenTensors.MaxAbsDiff(logits, expected);
        diff.Should().BeLessThan(0.15 * Math.Max(1, scale.item<float>()), "bf16 keeps about 3 significant digits");
        model.Info.Fingerprint.Should().NotBe(TestModels.Get("tiny-llama3").Info.Fingerprint, "the dtype is part of a model's identity");
    }

    [Fact]
    public void Bfloat16_re_rotation_is_float32_rotation_rounded_once()
    {
        using var keys = randn(2, 2, 5, 8).to(ScalarType.BFloat16);
        var rotary = s_bf16.Value.Rotary;

        using var rotated = rotary.RotateBy(keys, 1234);
        using var reference = rotary.RotateBy(keys.to(ScalarType.Float32), 1234);
        using var rounded = reference.to(ScalarType.BFloat16);

        rotated.dtype.Should().Be(ScalarType.BFloat16);
        GoldenTensors.MaxAbsDiff(rotated, rounded).Should().Be(0);
    }
}
