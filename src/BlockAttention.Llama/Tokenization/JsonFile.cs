using System.Text.Json;

namespace BlockAttention.Llama.Tokenization;

/// <summary>Small helpers to read a JSON file and fail with a message that names the file and the key.</summary>
internal static class JsonFile
{
    public static JsonDocument Parse(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer file not found: {path}", path);
        }

        try
        {
            using FileStream stream = File.OpenRead(path);
            return JsonDocument.Parse(stream);
        }
        catch (JsonException e)
        {
            throw new TokenizerFormatException(path, $"not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})", e);
        }
    }

    /// <summary>Gets <paramref name="key"/> of <paramref name="parent"/>, which is itself at <paramref name="parentKey"/> ("" for the root).</summary>
    public static JsonElement Required(string path, JsonElement parent, string parentKey, string key) =>
        parent.TryGetProperty(key, out JsonElement value)
            ? value
            : throw new TokenizerFormatException(path, $"'{(parentKey.Length == 0 ? key : parentKey + "." + key)}' is missing");

    public static JsonElement Object(string path, JsonElement element, string key) =>
        element.ValueKind == JsonValueKind.Object ? element : throw new TokenizerFormatException(path, $"{key} is {Describe(element)}; expected an object");

    public static string String(string path, JsonElement element, string key) =>
        element.ValueKind == JsonValueKind.String ? element.GetString()! : throw new TokenizerFormatException(path, $"{key} is {Describe(element)}; expected a string");

    private static string Describe(JsonElement element) =>
        element.ValueKind is JsonValueKind.Object or JsonValueKind.Array ? $"a{(element.ValueKind == JsonValueKind.Array ? "n" : "")} {element.ValueKind}" : element.GetRawText();
}
