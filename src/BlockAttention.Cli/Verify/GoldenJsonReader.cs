using System.Text.Json;
using BlockAttention.IO;

namespace BlockAttention.Cli.Verify;

/// <summary>
/// Reads the cases of a <c>golden.json</c>, checking every field it needs and naming the file and
/// the key of the first one that is missing or malformed (e.g. <c>cases[1].full_margins</c>).
/// </summary>
internal static class GoldenJsonReader
{
    /// <summary>The largest golden file read (256 MiB; the fixtures' are a few kilobytes).</summary>
    public const long MaxBytes = 256L << 20;

    public static IReadOnlyList<GoldenCase> Read(string path)
    {
        JsonDocument document;
        try
        {
            document = StrictJson.Parse(InputFile.ReadAllBytes(path, MaxBytes, "golden file"));
        }
        catch (JsonException e)
        {
            throw new InputException($"{path}: not valid JSON ({e.Message})", e);
        }
        catch (IOException e)
        {
            throw new InputException($"{path}: {e.Message}", e);
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("cases", out var cases) || cases.ValueKind != JsonValueKind.Array)
            {
                throw Malformed(path, "cases", "missing, or not an array (expected {\"cases\": [...]})");
            }

            var result = new List<GoldenCase>();
            var names = new HashSet<string>(StringComparer.Ordinal);
            foreach (var element in cases.EnumerateArray())
            {
                var golden = ReadCase(path, element, $"cases[{result.Count}]");
                if (!names.Add(golden.Name))
                {
                    throw Malformed(path, $"{golden.Key}.name", $"'{golden.Name}' names two cases");
                }

                result.Add(golden);
            }

            return result.Count > 0 ? result : throw Malformed(path, "cases", "is empty");
        }
    }

    private static GoldenCase ReadCase(string path, JsonElement element, string key)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Malformed(path, key, "is not an object");
        }

        var reader = new CaseReader(path, element, key);
        string name = reader.String("name");
        int[][] blocks = reader.Blocks("blocks");
        int total = blocks.Sum(b => b.Length);
        int[] kept = reader.Ints("logits_kept_positions");
        for (int i = 0; i < kept.Length; i++)
        {
            if (kept[i] < 0 || kept[i] >= total || (i > 0 && kept[i] <= kept[i - 1]))
            {
                throw Malformed(path, $"{key}.logits_kept_positions", $"must be ascending prompt positions in 0..{total - 1}; item {i} is {kept[i]}");
            }
        }

        if (kept.Length == 0 || kept[^1] != total - 1)
        {
            // The first greedy token is read from the last kept row, so the prompt's last position must be there.
            throw Malformed(path, $"{key}.logits_kept_positions", $"must end with the prompt's last position {total - 1}");
        }

        if (element.TryGetProperty("lengths", out _) && !reader.Ints("lengths").SequenceEqual(blocks.Select(b => b.Length)))
        {
            throw Malformed(path, $"{key}.lengths", "does not match the lengths of 'blocks'");
        }

        int? offset = element.TryGetProperty("block1_offset", out var offsetElement) && offsetElement.ValueKind != JsonValueKind.Null
            ? reader.Int("block1_offset")
            : null;
        if (offset is { } o && (blocks.Length < 2 || o != blocks[0].Length))
        {
            throw Malformed(path, $"{key}.block1_offset", blocks.Length < 2 ? "is given, but the prompt has no block 1" : $"is {o}, but block 1 starts at {blocks[0].Length}");
        }

        return new GoldenCase
        {
            Name = name,
            Key = key,
            Blocks = blocks,
            LogitsKeptPositions = kept,
            Full = reader.Greedy("full"),
            Block = reader.Greedy("block"),
            Block1Offset = offset,
        };
    }

    private static InputException Malformed(string path, string key, string problem) => new($"{path}: {key}: {problem}");

    /// <summary>Typed access to one case's fields, each failure naming its key.</summary>
    private sealed class CaseReader(string path, JsonElement element, string key)
    {
        public string String(string name) =>
            Get(name) is { ValueKind: JsonValueKind.String } value && value.GetString() is { Length: > 0 } text
                ? text
                : throw Malformed(path, $"{key}.{name}", "expected a non-empty string");

        public int Int(string name) =>
            Get(name) is { ValueKind: JsonValueKind.Number } value && value.TryGetInt32(out int number) && number >= 0
                ? number
                : throw Malformed(path, $"{key}.{name}", "expected a non-negative whole number");

        public int[] Ints(string name) => ReadArray($"{key}.{name}", Get(name), ReadId);

        public int[][] Blocks(string name)
        {
            var blocks = ReadArray($"{key}.{name}", Get(name), (item, itemKey) => ReadArray(itemKey, item, ReadId));
            if (blocks.Length == 0 || blocks[^1].Length == 0)
            {
                throw Malformed(path, $"{key}.{name}", "needs at least one block, and a non-empty final block");
            }

            return blocks;
        }

        /// <summary><c>{prefix}_greedy</c> and <c>{prefix}_margins</c>, of equal length.</summary>
        public GreedyReference Greedy(string prefix)
        {
            int[] tokens = Ints($"{prefix}_greedy");
            string marginsKey = $"{prefix}_margins";
            double[] margins = ReadArray($"{key}.{marginsKey}", Get(marginsKey), ReadMargin);
            if (margins.Length != tokens.Length)
            {
                throw Malformed(path, $"{key}.{marginsKey}", $"has {margins.Length} numbers, but {prefix}_greedy has {tokens.Length} tokens");
            }

            return new GreedyReference(tokens, margins);
        }

        private JsonElement Get(string name) =>
            element.TryGetProperty(name, out var value) ? value : throw Malformed(path, $"{key}.{name}", "missing");

        private T[] ReadArray<T>(string arrayKey, JsonElement value, Func<JsonElement, string, T> readItem)
        {
            if (value.ValueKind != JsonValueKind.Array)
            {
                throw Malformed(path, arrayKey, "expected an array");
            }

            var items = new T[value.GetArrayLength()];
            int i = 0;
            foreach (var item in value.EnumerateArray())
            {
                items[i] = readItem(item, $"{arrayKey}[{i}]");
                i++;
            }

            return items;
        }

        private int ReadId(JsonElement item, string itemKey) =>
            item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int id) && id >= 0
                ? id
                : throw Malformed(path, itemKey, $"expected a non-negative whole number, got {item.GetRawText()}");

        private double ReadMargin(JsonElement item, string itemKey) =>
            item.ValueKind == JsonValueKind.Number && item.GetDouble() is var margin && margin >= 0 && double.IsFinite(margin)
                ? margin
                : throw Malformed(path, itemKey, $"expected a non-negative number, got {item.GetRawText()}");
    }
}
