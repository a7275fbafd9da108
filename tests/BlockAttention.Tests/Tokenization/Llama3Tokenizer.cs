using BlockAttention.Llama.Tokenization;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Tokenization;

/// <summary>The fixture's Llama 3.1 tokenizer, loaded once for all tests (loading takes about a second).</summary>
internal static class Llama3Tokenizer
{
    private static readonly Lazy<LlamaTokenizer> s_instance = new(() => LlamaTokenizer.FromFile(JsonPath));

    public static string JsonPath => Path.Combine(FixturePaths.Model("tiny-llama3"), "tokenizer.json");

    public static LlamaTokenizer Instance => s_instance.Value;
}
