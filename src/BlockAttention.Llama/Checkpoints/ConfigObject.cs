using System.Globalization;
using System.Text.Json;
using BlockAttention.IO;

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

    private static readonly JsonDocumentOptions ParseOptions = new() { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip };

    /// <summary>Reads a configuration file (<c>config.json</c> or <c>generation_config.json</c>) through the bounded reader.</summary>
    public static byte[] ReadFile(string fullPath, string kind, CheckpointFileLimits? limits)
    {
        limits ??= CheckpointFileLimits.Default;
        limits.Validate();
        return InputFile.ReadAllBytes(fullPath, limits.ConfigJsonBytes, kind, CheckpointFileLimits.Hint(nameof(CheckpointFileLimits.ConfigJsonBytes)));
    }

    /// <summary>Parses <paramref name="json"/> and runs <paramref name="read"/> over its root object.</summary>
    public static T Read<T>(string json, string path, Func<ConfigObject, T> read)
        => Read(path, read, () => StrictJson.Parse(json, ParseOptions));

    /// <summary>Parses UTF-8 <paramref name="json"/> (a byte order mark is allowed) and runs <paramref name="read"/> over its root object.</summary>
    public static T Read<T>(byte[] json, string path, Func<ConfigObject, T> read)
        => Read(path, read, () => StrictJson.Parse(json, ParseOptions));

    private static T Read<T>(string path, Func<ConfigObject, T> read, Func<JsonDocument> parse)
    {
        JsonDocument document;
        try
        {
            document = parse();
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

        if (value.ValueKind != JsonValueKind.Number)
        {
            throw WrongType(key, value, "a number");
        }

        // 1e400 parses as +Infinity; no setting of a model means that.
        double number = value.GetDouble();
        return double.IsFinite(number) ? number : throw Invalid(key, $"is {value.GetRawText()}, which is not a finite number");
    }

    /// <summary>A number that must lie in (<paramref name="exclusiveMin"/>, <paramref name="inclusiveMax"/>].</summary>
    public double? GetOptionalDoubleInRange(string key, double exclusiveMin, double inclusiveMax)
    {
        double? value = GetOptionalDouble(key);
        if (value is { } number && !(number > exclusiveMin && number <= inclusiveMax))
        {
            throw Invalid(key, $"is {Format(number)}, expected a number above {Format(exclusiveMin)} and at most {Format(inclusiveMax)}");
        }

        return value;
    }

    /// <summary>A token id: a non-negative integer, or <see langword="null"/> when absent.</summary>
    public int? GetOptionalTokenId(string key)
    {
        int? id = GetOptionalInt32(key);
        return id is < 0 ? throw Invalid(key, $"is {id}, expected a non-negative token id") : id;
    }

    /// <summary>One token id or a list of them (as <c>eos_token_id</c> is written); empty when absent.</summary>
    public IReadOnlyList<int> GetTokenIdOrList(string key)
    {
        IReadOnlyList<int> ids = GetInt32OrList(key);
        foreach (int id in ids)
        {
            if (id < 0)
            {
                throw Invalid(key, $"holds {id}, expected non-negative token ids");
            }
        }

        return ids;
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
