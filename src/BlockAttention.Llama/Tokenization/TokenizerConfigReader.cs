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

    /// <summary>
    /// The <c>chat_template</c>: a string, or (newer files) a list of <c>{"name", "template"}</c>
    /// objects of which the one named <c>default</c> is taken. Null when there is none.
    /// </summary>
    public static string? ReadChatTemplate(string path, CheckpointFileLimits? limits = null)
    {
        limits ??= CheckpointFileLimits.Default;
        limits.Validate();
        using JsonDocument document = JsonFile.Parse(path, limits.TokenizerConfigJsonBytes, nameof(CheckpointFileLimits.TokenizerConfigJsonBytes));
        JsonElement root = JsonFile.Object(path, document.RootElement, "(root)");
        if (!root.TryGetProperty("chat_template", out JsonElement value))
        {
            return null;
        }

        switch (value.ValueKind)
        {
            case JsonValueKind.Null:
                return null;
            case JsonValueKind.String:
                return value.GetString();
            case JsonValueKind.Array:
                foreach (JsonElement entry in value.EnumerateArray())
                {
                    if (entry.ValueKind == JsonValueKind.Object
                        && entry.TryGetProperty("name", out JsonElement name) && name.ValueKind == JsonValueKind.String && name.GetString() == "default"
                        && entry.TryGetProperty("template", out JsonElement template) && template.ValueKind == JsonValueKind.String)
                    {
                        return template.GetString();
                    }
                }

                return null;
            default:
                throw new TokenizerFormatException(path, $"chat_template is {value.ValueKind}; expected a string or a list of named templates");
        }
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
