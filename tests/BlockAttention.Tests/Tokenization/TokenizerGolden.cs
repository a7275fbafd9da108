using System.Text.Json;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Tokenization;

/// <summary>The cases of <c>tests/fixtures/tokenizer_golden.json</c>: Hugging Face <c>tokenizers</c> output.</summary>
internal static class TokenizerGolden
{
    private static readonly Lazy<IReadOnlyList<Case>> s_cases = new(Load);

    public static IReadOnlyList<Case> Cases => s_cases.Value;

    private static IReadOnlyList<Case> Load()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(FixturePaths.Root, "tokenizer_golden.json")));
        return document.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new Case(
                c.GetProperty("text").GetString()!,
                c.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32()).ToArray(),
                c.GetProperty("decoded").GetString()!))
            .ToArray();
    }

    internal sealed record Case(string Text, int[] Ids, string Decoded);
}
