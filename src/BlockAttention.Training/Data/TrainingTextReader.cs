using System.Text;
using System.Text.Json;
using BlockAttention.Prompts;

namespace BlockAttention.Training.Data;

/// <summary>
/// Reads the reference's training files: JSON Lines, one record per line, each either
/// <c>{"messages": [{"role", "content"}, ...]}</c> (chunked by <see cref="ChatSampleSplitter"/>)
/// or <c>{"prompt": str, "blocks": [str, ...], "response": str}</c> (already chunked; the blocks
/// are used, the prompt only when there are no blocks).
/// </summary>
public static class TrainingTextReader
{
    /// <summary>The longest line accepted (64 MiB of UTF-16): a longer one is reported rather than read into memory.</summary>
    public const int MaxLineChars = 64 << 20;

    /// <summary>Streams the examples of <paramref name="path"/>, line by line.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="TrainingDataException">A line is not valid JSON, is too long, or lacks a key.</exception>
    public static IEnumerable<TrainingText> Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"training data file not found: {path}", path);
        }

        using var reader = new StreamReader(path, Encoding.UTF8);
        long lineNumber = 0;
        while (ReadBoundedLine(reader, path, lineNumber + 1) is { } line)
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            foreach (var sample in Parse(line, path, lineNumber))
            {
                yield return sample;
            }
        }
    }

    /// <summary>The examples of one JSON record; <paramref name="path"/> and <paramref name="lineNumber"/> name it in errors.</summary>
    /// <exception cref="TrainingDataException">The record is malformed.</exception>
    public static IReadOnlyList<TrainingText> Parse(string json, string path, long lineNumber)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new TrainingDataException(path, lineNumber, $"not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new TrainingDataException(path, lineNumber, "a record must be a JSON object");
            }

            if (root.TryGetProperty("messages", out var messages))
            {
                return ReadMessages(messages, path, lineNumber);
            }

            if (root.TryGetProperty("response", out var response))
            {
                return [ReadBlocks(root, response, path, lineNumber)];
            }

            throw new TrainingDataException(path, lineNumber, "a record needs 'messages', or 'blocks' (or 'prompt') and 'response'");
        }
    }

    private static IReadOnlyList<TrainingText> ReadMessages(JsonElement messages, string path, long line)
    {
        if (messages.ValueKind != JsonValueKind.Array)
        {
            throw new TrainingDataException(path, line, "'messages' must be an array");
        }

        var list = new List<ChatMessage>();
        int index = 0;
        foreach (var message in messages.EnumerateArray())
        {
            string role = RequiredString(message, "role", $"messages[{index}]", path, line);
            string content = RequiredString(message, "content", $"messages[{index}]", path, line);
            if (role is not ("system" or "user" or "assistant"))
            {
                throw new TrainingDataException(path, line, $"messages[{index}].role is '{role}'; use system, user or assistant");
            }

            list.Add(new ChatMessage(role, content));
            index++;
        }

        return ChatSampleSplitter.Split(list);
    }

    private static TrainingText ReadBlocks(JsonElement root, JsonElement response, string path, long line)
    {
        if (response.ValueKind != JsonValueKind.String)
        {
            throw new TrainingDataException(path, line, "'response' must be a string");
        }

        var blocks = new List<string>();
        if (root.TryGetProperty("blocks", out var array))
        {
            if (array.ValueKind != JsonValueKind.Array)
            {
                throw new TrainingDataException(path, line, "'blocks' must be an array of strings");
            }

            int index = 0;
            foreach (var block in array.EnumerateArray())
            {
                blocks.Add(block.ValueKind == JsonValueKind.String
                    ? block.GetString()!
                    : throw new TrainingDataException(path, line, $"blocks[{index}] must be a string"));
                index++;
            }
        }

        if (blocks.Count == 0)
        {
            blocks.Add(RequiredString(root, "prompt", "", path, line));
        }

        return new TrainingText(blocks, response.GetString()!);
    }

    private static string RequiredString(JsonElement parent, string key, string parentName, string path, long line)
    {
        string name = parentName.Length == 0 ? key : $"{parentName}.{key}";
        if (parent.ValueKind != JsonValueKind.Object || !parent.TryGetProperty(key, out var value))
        {
            throw new TrainingDataException(path, line, $"'{name}' is missing");
        }

        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new TrainingDataException(path, line, $"'{name}' must be a string");
    }

    // StreamReader.ReadLine has no limit; this stops at MaxLineChars so one huge line cannot exhaust memory.
    private static string? ReadBoundedLine(StreamReader reader, string path, long lineNumber)
    {
        var builder = new StringBuilder();
        int c;
        while ((c = reader.Read()) >= 0)
        {
            if (c == '\n')
            {
                return builder.ToString();
            }

            if (c != '\r')
            {
                if (builder.Length >= MaxLineChars)
                {
                    throw new TrainingDataException(path, lineNumber, $"the line is longer than {MaxLineChars} characters");
                }

                builder.Append((char)c);
            }
        }

        return builder.Length > 0 ? builder.ToString() : null;
    }
}
