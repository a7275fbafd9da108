using System.Text;
using System.Text.Json;

namespace BlockAttention.Evaluation;

/// <summary>
/// Reads RAG records from JSON lines: one object per line with <c>question</c> (string),
/// <c>answers</c> (list of strings, at least one) and <c>documents</c> (list of objects with
/// <c>title</c>, <c>text</c> and an optional numeric <c>score</c>). Other keys are ignored, blank
/// lines skipped. Every error names the source, the line and the key.
/// </summary>
public static class RagDataReader
{
    /// <summary>The longest line accepted by default, in characters (16 Mi): a bound on memory for a damaged file.</summary>
    public const int DefaultMaxLineLength = 16 << 20;

    /// <summary>Reads every record of the file at <paramref name="path"/>.</summary>
    /// <exception cref="IOException">The file cannot be opened (for example, it does not exist).</exception>
    /// <exception cref="RagDataFormatException">A line is not a valid record.</exception>
    public static IReadOnlyList<RagRecord> ReadFile(string path, int maxLineLength = DefaultMaxLineLength)
    {
        ArgumentNullException.ThrowIfNull(path);
        using var reader = new StreamReader(path, Encoding.UTF8);
        return [.. Read(reader, path, maxLineLength)];
    }

    /// <summary>Reads records one line at a time from <paramref name="reader"/>; <paramref name="source"/> names it in errors.</summary>
    /// <exception cref="RagDataFormatException">A line is not a valid record.</exception>
    public static IEnumerable<RagRecord> Read(TextReader reader, string source, int maxLineLength = DefaultMaxLineLength)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(source);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLineLength, 1);
        long number = 0;
        var line = new StringBuilder();
        while (ReadBoundedLine(reader, line, maxLineLength, source, number + 1))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line.ToString()))
            {
                continue;
            }

            yield return Parse(line.ToString(), source, number);
        }
    }

    /// <summary>Parses one JSON line as a record; <paramref name="source"/> and <paramref name="line"/> name it in errors.</summary>
    /// <exception cref="RagDataFormatException">The line is not a valid record.</exception>
    public static RagRecord Parse(string json, string source, long line)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(source);
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new RagDataFormatException(source, line, $"not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new RagDataFormatException(source, line, $"a record must be a JSON object, got {Describe(root)}");
            }

            string question = RequiredString(root, "question", source, line);
            var answers = RequiredArray(root, "answers", source, line)
                .Select((a, i) => a.ValueKind == JsonValueKind.String
                    ? a.GetString()!
                    : throw new RagDataFormatException(source, line, $"answers[{i}] must be a string, got {Describe(a)}"))
                .ToList();
            if (answers.Count == 0)
            {
                throw new RagDataFormatException(source, line, "'answers' is empty: a record needs at least one gold answer");
            }

            var documents = RequiredArray(root, "documents", source, line)
                .Select((d, i) => ParseDocument(d, $"documents[{i}]", source, line))
                .ToList();
            return new RagRecord { Question = question, Answers = answers, Documents = documents };
        }
    }

    private static RagDocument ParseDocument(JsonElement element, string at, string source, long line)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new RagDataFormatException(source, line, $"{at} must be an object with 'title' and 'text', got {Describe(element)}");
        }

        double? score = null;
        if (element.TryGetProperty("score", out var value) && value.ValueKind != JsonValueKind.Null)
        {
            score = value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double s) && double.IsFinite(s)
                ? s
                : throw new RagDataFormatException(source, line, $"{at}.score must be a finite number, got {Describe(value)}");
        }

        return new RagDocument(RequiredString(element, "title", source, line, at), RequiredString(element, "text", source, line, at), score);
    }

    private static string RequiredString(JsonElement parent, string key, string source, long line, string? at = null)
    {
        string name = at is null ? key : $"{at}.{key}";
        if (!parent.TryGetProperty(key, out var value))
        {
            throw new RagDataFormatException(source, line, $"missing '{name}'");
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new RagDataFormatException(source, line, $"'{name}' must be a string, got {Describe(value)}");
    }

    private static IEnumerable<JsonElement> RequiredArray(JsonElement parent, string key, string source, long line)
    {
        if (!parent.TryGetProperty(key, out var value))
        {
            throw new RagDataFormatException(source, line, $"missing '{key}'");
        }

        return value.ValueKind == JsonValueKind.Array
            ? value.EnumerateArray()
            : throw new RagDataFormatException(source, line, $"'{key}' must be a list, got {Describe(value)}");
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "a list",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {value.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        _ => "null",
    };

    // TextReader.ReadLine has no bound: one damaged multi-gigabyte line would be read whole.
    private static bool ReadBoundedLine(TextReader reader, StringBuilder line, int maxLength, string source, long number)
    {
        line.Clear();
        int c = reader.Read();
        if (c < 0)
        {
            return false;
        }

        while (c >= 0 && c != '\n')
        {
            if (line.Length >= maxLength)
            {
                throw new RagDataFormatException(source, number, $"the line is longer than {maxLength} characters");
            }

            line.Append((char)c);
            c = reader.Read();
        }

        if (line.Length > 0 && line[^1] == '\r')
        {
            line.Length--;
        }

        return true;
    }
}
