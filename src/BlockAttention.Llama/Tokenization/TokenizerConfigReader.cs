using System.Text.Json;
using BlockAttention.Llama.Checkpoints;

namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// Reads the BOS and EOS token names from a Hugging Face <c>tokenizer_config.json</c>; <c>tokenizer.json</c>
/// itself does not say which of its special tokens play those roles.
/// </summary>
internal static class TokenizerConfigReader
{
    public const string FileName = "tokenizer_config.json";

    public static (string? BosToken, string? EosToken) Read(string path, CheckpointFileLimits? limits = null)
    {
        limits ??= CheckpointFileLimits.Default;
        limits.Validate();
        using JsonDocument document = JsonFile.Parse(path, limits.TokenizerConfigJsonBytes, nameof(CheckpointFileLimits.TokenizerConfigJsonBytes));
        JsonElement root = JsonFile.Object(path, document.RootElement, "(root)");
        return (TokenName(path, root, "bos_token"), TokenName(path, root, "eos_token"));
    }

    private static string? TokenName(string path, JsonElement root, string key)
    {
        if (!root.TryGetProperty(key, out JsonElement value))
        {
            return null;
        }

        // Written either as the token text or as an AddedToken object {"content": ..., ...}.
        return value.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object => JsonFile.String(path, JsonFile.Required(path, value, key, "content"), key + ".content"),
            _ => throw new TokenizerFormatException(path, $"{key} is {JsonFile.Describe(value)}; expected a token string"),
        };
    }
}
