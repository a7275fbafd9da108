using BlockAttention.Caching;
using BlockAttention.Llama;
using BlockAttention.Tests.Fixtures;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Forward;

/// <summary>The matmul attention (the CUDA default) against the reference, run on the CPU.</summary>
public class MatmulAttentionTests
{
    private static readonly Lazy<LlamaModel> s_matmul = new(() =>
        LlamaModel.Load(FixturePaths.Model("tiny-llama3"), new LlamaLoadOptions { Attention = AttentionImplementation.Matmul }));

    [Theory]
    [InlineData("rag")]
    [InlineData("long")]
    public void Cached_block_logits_and_greedy_tokens_match_the_reference(string name)
    {
        var golden = GoldenCase.Get("tiny-llama3", name);
        var model = s_matmul.Value;
        using var cache = model.CreateCache(golden.TotalLength + golden.BlockGreedy.Length);
        var blocks = golden.Blocks[..^1].Select(tokens => Session.CachedVersusOnePassTests.Encode(model, tokens)).ToList();
        BlockAttention.Attention.BlockAssembler.Assemble(blocks, model.Rotary, cache);
        blocks.ForEach(b => b.Release());

        using var logits = model.Forward(golden.Blocks[^1], cache, golden.LogitsKeptPositions.Length)!;
        using var expected = GoldenTensors.Read("tiny-llama3", $"{name}.block.logits");
        GoldenTensors.MaxAbsDiff(logits, expected).Should().BeLessThanOrEqualTo(golden.LogitTolerance);

        var tokens = new List<int>();
        using (var first = logits[^1].argmax())
        {
            tokens.Add((int)first.item<long>());
        }

        while (tokens.Count < golden.BlockGreedy.Length)
        {
            using var next = model.Forward([tokens[^1]], cache)!; // one token: the unmasked path
            using var best = next[0].argmax();
            tokens.Add((int)best.item<long>());
        }

        GreedyCheck.AssertMatches(tokens, golden.BlockGreedy, golden.BlockMargins, $"{golden} matmul attention");
    }

    [Fact]
    public void TorchSharp_baddbmm_operand_order_is_as_worked_around()
    {
        using var input = full([2, 3, 5], 10f);
        using var a = ones(2, 3, 4);
        using var b = ones(2, 4, 5);

        using var result = AttentionPlan.Baddbmm(input, a, b, beta: 0.5f, alpha: 2f);

        result.shape.Should().Equal([2, 3, 5]);
        result.max().item<float>().Should().Be(0.5f * 10 + 2 * 4);
        result.min().item<float>().Should().Be(0.5f * 10 + 2 * 4);
    }
}
