using System.Globalization;
using System.Text.Json;

namespace BlockAttention.Llama.Checkpoints;

/// <summary>
/// Typed access to one JSON object of a configuration file, where every missing key or wrong type
/// becomes a <see cref="CheckpointFormatException"/> naming the file and the full (dotted) key.
/// </summary>
/// <remarks>
/// A JSON <c>null</c> counts as absent, as <c>transformers</c> treats it: configs write
/// <c>"rope_scaling": null</c> or <c>"head_dim": null</c> to mean "use the default".
/// </remarks>
internal readonly struct ConfigObject
{
    private readonly JsonElement _element;
    private readonly string _prefix;

    private ConfigObject(JsonElement element, string path, string prefix)
    {
        _element = element;
        Path = path;
        _prefix = prefix;
    }

    /// <summary>The file the object came from, for error messages.</summary>
    public string Path { get; }

    /// <summary>Parses <paramref name="json"/> and runs <paramref name="read"/> over its root object.</summary>
    public static T Read<T>(string json, string path, Func<ConfigObject, T> read)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"Configuration file '{path}' is not valid JSON: {e.Message}", path, null, e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointFormatException(
                    $"Configuration file '{path}' is a JSON {document.RootElement.ValueKind}, expected an object.", path);
            }

            return read(new ConfigObject(document.RootElement, path, ""));
        }
    }

    /// <summary>Whether <paramref name="key"/> is present with a non-null value.</summary>
    public bool Has(string key) => TryGet(key, out _);

    /// <summary>The dotted name of <paramref name="key"/> inside this object, as error messages show it.</summary>
    public string FullKey(string key) => _prefix + key;

    public int GetInt32(string key) => GetOptionalInt32(key) ?? throw Missing(key);

    public int? GetOptionalInt32(string key)
    {
        if (!TryGet(key, out JsonElement value))
        {
            return null;
        }

        return TryReadInt32(value, out int result) ? result : throw WrongType(key, value, "an integer");
    }

    public double GetDouble(string key) => GetOptionalDouble(key) ?? throw Missing(key);

    public double? GetOptionalDouble(string key)
    {
        if (!TryGet(key, out JsonElement value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw WrongType(key, value, "a number");
    }

    public bool? GetOptionalBoolean(string key)
    {
        if (!TryGet(key, out JsonElement value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(key, value, "true or false"),
        };
    }

    public string GetString(string key) => GetOptionalString(key) ?? throw Missing(key);

    public string? GetOptionalString(string key)
    {
        if (!TryGet(key, out JsonElement value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String ? value.GetString() : throw WrongType(key, value, "a string");
    }

    /// <summary>An integer or a list of integers (as <c>eos_token_id</c> is written); empty when absent.</summary>
    public IReadOnlyList<int> GetInt32OrList(string key)
    {
        if (!TryGet(key, out JsonElement value))
        {
            return [];
        }

        if (TryReadInt32(value, out int single))
        {
            return [single];
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            throw WrongType(key, value, "an integer or a list of integers");
        }

        var list = new List<int>(value.GetArrayLength());
        foreach (JsonElement item in value.EnumerateArray())
        {
            list.Add(TryReadInt32(item, out int id) ? id : throw WrongType(key, value, "an integer or a list of integers"));
        }

        return list.AsReadOnly();
    }

    /// <summary>A nested object, or <see langword="null"/> when absent.</summary>
    public ConfigObject? GetOptionalObject(string key)
    {
        if (!TryGet(key, out JsonElement value))
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Object
            ? new ConfigObject(value, Path, FullKey(key) + ".")
            : throw WrongType(key, value, "an object");
    }

    /// <summary>An error for a value that is well-typed but not acceptable.</summary>
    public CheckpointFormatException Invalid(string key, string problem)
        => new($"Configuration file '{Path}': key '{FullKey(key)}' {problem}.", Path, FullKey(key));

    private CheckpointFormatException Missing(string key)
        => new($"Configuration file '{Path}' has no '{FullKey(key)}', which is required.", Path, FullKey(key));

    private CheckpointFormatException WrongType(string key, JsonElement value, string expected)
        => Invalid(key, $"is {value.GetRawText()} (JSON {value.ValueKind}), expected {expected}");

    /// <summary>A number as error messages show it, independent of the current culture.</summary>
    public static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private bool TryGet(string key, out JsonElement value)
        => _element.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;

    private static bool TryReadInt32(JsonElement value, out int result)
    {
        result = 0;
        if (value.ValueKind != JsonValueKind.Number)
        {
            return false;
        }

        if (value.TryGetInt32(out result))
        {
            return true;
        }

        // Some writers emit integral sizes as floats (8192.0); the value is still unambiguous.
        double number = value.GetDouble();
        if (number == Math.Floor(number) && number >= int.MinValue && number <= int.MaxValue)
        {
            result = (int)number;
            return true;
        }

        return false;
    }
}
