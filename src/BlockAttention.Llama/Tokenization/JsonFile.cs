using System.Text.Json;
using BlockAttention.IO;

namespace BlockAttention.Llama.Tokenization;

/// <summary>Small helpers to read a JSON file and fail with a message that names the file and the key.</summary>
internal static class JsonFile
{
    /// <summary>Reads and parses <paramref name="path"/>, a file of at most <paramref name="maxBytes"/> bytes.</summary>
    /// <param name="path">The file.</param>
    /// <param name="maxBytes">The largest size accepted.</param>
    /// <param name="limitName">The <see cref="Checkpoints.CheckpointFileLimits"/> property that sets the limit, for the message.</param>
    public static JsonDocument Parse(string path, long maxBytes, string limitName)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer file not found: {path}", path);
        }

        byte[] bytes = InputFile.ReadAllBytes(path, maxBytes, Path.GetFileName(path), Checkpoints.CheckpointFileLimits.Hint(limitName));
        try
        {
            return StrictJson.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException(path, $"not valid JSON: {e.Message}", e);
        }
    }

    /// <summary>Gets <paramref name="key"/> of <paramref name="parent"/>, which is itself at <paramref name="parentKey"/> ("" for the root).</summary>
    public static JsonElement Required(string path, JsonElement parent, string parentKey, string key) =>
        parent.TryGetProperty(key, out JsonElement value)
            ? value
            : throw new TokenizerFormatException(path, $"'{(parentKey.Length == 0 ? key : parentKey + "." + key)}' is missing");

    public static JsonElement Object(string path, JsonElement element, string key) =>
        element.ValueKind == JsonValueKind.Object ? element : throw new TokenizerFormatException(path, $"{key} is {Describe(element)}; expected an object");

    public static JsonElement Array(string path, JsonElement element, string key) =>
        element.ValueKind == JsonValueKind.Array ? element : throw new TokenizerFormatException(path, $"{key} is {Describe(element)}; expected an array");

    public static string String(string path, JsonElement element, string key) =>
        element.ValueKind == JsonValueKind.String ? element.GetString()! : throw new TokenizerFormatException(path, $"{key} is {Describe(element)}; expected a string");

    public static string Describe(JsonElement element) =>
        element.ValueKind is JsonValueKind.Object or JsonValueKind.Array
            ? $"an {element.ValueKind}"
            : Abbreviate(element.GetRawText());

    // A hostile value can be megabytes long; a message needs only its start.
    private static string Abbreviate(string text) => text.Length <= 80 ? text : string.Concat(text.AsSpan(0, 80), "...");
}
