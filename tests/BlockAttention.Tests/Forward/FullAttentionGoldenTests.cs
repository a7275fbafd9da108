using BlockAttention.Tests.Fixtures;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Forward;

/// <summary>Full (ordinary causal) attention against the transformers reference, on both fixture models.</summary>
public class FullAttentionGoldenTests
{
    public static IEnumerable<object[]> Cases => GoldenCase.All();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Logits_of_the_final_block_match_the_reference(string model, string name)
    {
        var golden = GoldenCase.Get(model, name);
        var llama = TestModels.Get(model);
        using var cache = llama.CreateCache(golden.TotalLength);
        using var logits = llama.Forward(golden.AllTokens, cache, golden.LogitsKeptPositions.Length)!;
        using var expected = GoldenTensors.Read(model, $"{name}.full.logits");

        GoldenTensors.MaxAbsDiff(logits, expected).Should().BeLessThanOrEqualTo(golden.LogitTolerance);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Greedy_tokens_match_the_reference_by_the_margin_rule(string model, string name)
    {
        var golden = GoldenCase.Get(model, name);
        var llama = TestModels.Get(model);
        using var cache = llama.CreateCache(golden.TotalLength + golden.FullGreedy.Length);
        var tokens = new List<int>();
        var logits = llama.Forward(golden.AllTokens, cache)!;
        for (int step = 0; step < golden.FullGreedy.Length; step++)
        {
            using (logits)
            using (var best = logits[0].argmax())
            {
                tokens.Add((int)best.item<long>());
            }

            if (step < golden.FullGreedy.Length - 1)
            {
                logits = llama.Forward([tokens[^1]], cache)!;
            }
        }

        GreedyCheck.AssertMatches(tokens, golden.FullGreedy, golden.FullMargins, golden.ToString());
    }
}
