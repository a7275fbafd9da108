using System.Text.Json;
using BlockAttention.IO;
using BlockAttention.Prompts;

namespace BlockAttention.Cli.Generate;

/// <summary>
/// Reads a prompt from a JSON file in one of three shapes:
/// <c>["block", ..., "final block"]</c>; <c>{"blocks": [...]}</c>; or a RAG request
/// <c>{"passages": [{"title", "text"}], "question": "...", "instruction"?: "..."}</c>, laid out as
/// the reference does (<see cref="BlockPrompt.ForRag"/>).
/// </summary>
/// <remarks>
/// The file is read through <see cref="InputFile"/>: only a regular file of at most
/// <see cref="MaxBytes"/> is read, so a named pipe or a link to a device cannot hang or exhaust the
/// tool. A UTF-8 byte order mark is accepted; text that is not UTF-8, or a string escaping a lone
/// surrogate, is rejected with the file named.
/// </remarks>
internal static class BlocksFile
{
    /// <summary>The largest blocks file read: 64 MiB, far more text than any model's context holds.</summary>
    public const long MaxBytes = 64L << 20;

    public static BlockPrompt Read(string path) => Read(path, MaxBytes);

    public static BlockPrompt Read(string path, long maxBytes)
    {
        if (!File.Exists(path))
        {
            throw new InputException($"blocks file not found: {path}");
        }

        byte[] bytes;
        try
        {
            bytes = InputFile.ReadAllBytes(path, maxBytes, "blocks file");
        }
        catch (IOException e)
        {
            throw new InputException($"{path}: {e.Message}", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new InputException($"{path}: {e.Message}", e);
        }

        try
        {
            using var document = StrictJson.Parse(bytes);
            var root = document.RootElement;
            return root.ValueKind switch
            {
                JsonValueKind.Array => FromBlocks(path, root, "the top-level array"),
                JsonValueKind.Object when root.TryGetProperty("blocks", out var blocks) => FromBlocks(path, blocks, "'blocks'"),
                JsonValueKind.Object when root.TryGetProperty("passages", out var passages) => FromRag(path, root, passages),
                _ => throw Problem(path, "expected an array of block strings, {\"blocks\": [...]}, or {\"passages\": [...], \"question\": ...}"),
            };
        }
        catch (JsonException e)
        {
            throw Problem(path, $"not valid JSON ({e.Message})");
        }
        catch (ArgumentException e)
        {
            // The prompt builders refuse what no prompt can be (no final block, an empty question).
            throw Problem(path, e.Message);
        }
    }

    private static BlockPrompt FromBlocks(string path, JsonElement blocks, string what)
    {
        if (blocks.ValueKind != JsonValueKind.Array)
        {
            throw Problem(path, $"{what} is not an array of strings");
        }

        var texts = new List<string>();
        foreach (var block in blocks.EnumerateArray())
        {
            texts.Add(block.ValueKind == JsonValueKind.String
                ? block.GetString()!
                : throw Problem(path, $"block {texts.Count} of {what} is not a string"));
        }

        if (texts.Count == 0)
        {
            throw Problem(path, $"{what} is empty: a prompt needs at least the final block");
        }

        if (texts[^1].Length == 0)
        {
            throw Problem(path, $"the final block (the last of {what}) is empty");
        }

        return BlockPrompt.FromBlocks(texts);
    }

    private static BlockPrompt FromRag(string path, JsonElement root, JsonElement passages)
    {
        if (passages.ValueKind != JsonValueKind.Array)
        {
            throw Problem(path, "'passages' is not an array");
        }

        var list = new List<RagPassage>();
        foreach (var passage in passages.EnumerateArray())
        {
            string key = $"passages[{list.Count}]";
            if (passage.ValueKind != JsonValueKind.Object)
            {
                throw Problem(path, $"{key} is not an object with \"title\" and \"text\"");
            }

            list.Add(new RagPassage(RequiredString(path, passage, "title", key), RequiredString(path, passage, "text", key)));
        }

        if (list.Count == 0)
        {
            throw Problem(path, "'passages' is empty");
        }

        string question = RequiredString(path, root, "question", null);
        string? instruction = root.TryGetProperty("instruction", out var value) && value.ValueKind != JsonValueKind.Null
            ? RequiredString(path, root, "instruction", null)
            : null;
        return BlockPrompt.ForRag(list, question, instruction);
    }

    private static string RequiredString(string path, JsonElement element, string name, string? parent)
    {
        string key = parent is null ? $"'{name}'" : $"{parent}.{name}";
        return element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw Problem(path, $"{key} is missing or not a string");
    }

    private static InputException Problem(string path, string problem) => new($"{path}: {problem}");
}
