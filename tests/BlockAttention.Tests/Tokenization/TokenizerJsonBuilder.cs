using System.Text.Json.Nodes;

namespace BlockAttention.Tests.Tokenization;

/// <summary>
/// Writes small tokenizer.json files (Llama 3 layout, a byte-level vocabulary of 256 bytes plus a few merges)
/// into a temporary folder, so that tests can break one key at a time.
/// </summary>
internal sealed class TokenizerJsonBuilder : IDisposable
{
    private const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public TokenizerJsonBuilder()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("blockattn-tokenizer-").FullName;
        Json = CreateMinimal();
    }

    public string Directory { get; }

    public JsonObject Json { get; }

    public string TokenizerPath => Path.Combine(Directory, "tokenizer.json");

    public string ConfigPath => Path.Combine(Directory, "tokenizer_config.json");

    public string Write()
    {
        File.WriteAllText(TokenizerPath, Json.ToJsonString());
        return TokenizerPath;
    }

    public void WriteConfig(string json) => File.WriteAllText(ConfigPath, json);

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);

    private static JsonObject CreateMinimal()
    {
        var vocab = new JsonObject();
        int shifted = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            vocab[(printable ? (char)b : (char)(256 + shifted++)).ToString()] = b;
        }

        vocab["Ġt"] = 256;
        vocab["he"] = 257;
        vocab["Ġthe"] = 258;

        return new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(
                new JsonObject { ["id"] = 259, ["content"] = "<|begin_of_text|>", ["special"] = true, ["lstrip"] = false, ["rstrip"] = false },
                new JsonObject { ["id"] = 260, ["content"] = "<|eot_id|>", ["special"] = true }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = Llama3Pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = false }),
            },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel" },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["ignore_merges"] = true,
                ["vocab"] = vocab,
                ["merges"] = new JsonArray("Ġ t", new JsonArray("h", "e"), "Ġt he"),
            },
        };
    }
}
