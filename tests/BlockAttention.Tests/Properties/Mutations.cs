using System.Text;
using System.Text.Json.Nodes;
using CsCheck;

namespace BlockAttention.Tests.Properties;

/// <summary>
/// Generators that damage a valid file the way a careless or hostile user would: at the byte level
/// (truncate, flip bits, insert JSON fragments, cut or repeat a range) and at the JSON level (a value
/// of another kind, an extreme number, odd Unicode, a key removed or repeated).
/// </summary>
internal static class Mutations
{
    /// <summary>Fragments that change how JSON parses or what a number or string means.</summary>
    private static readonly string[] Fragments =
    [
        "\"", "{", "}", "[", "]", ",", ":", "\\", "\\u", "\\ud800", "\\udc00", "\\u0000", "null", "true", "-",
        "1e400", "-1e400", "1e-400", "2147483647", "2147483648", "-2147483649", "9223372036854775808", "18446744073709551616",
        "0", "-0", "0.5", "1.5e308", "NaN", "Infinity", "\uFEFF", "\u202E", "\U0001F600", "e\u0301", "\u0000",
    ];

    /// <summary>Raw JSON values put in place of a value: other kinds, extreme numbers, odd strings.</summary>
    private static readonly string[] Replacements =
    [
        "null", "true", "false", "[]", "{}", "[1, 2]", "{\"a\": 1}", "\"\"", "\"x\"",
        "0", "-1", "1", "0.5", "-0.0", "1e400", "-1e400", "1e-400", "1.7976931348623157e308", "4.9e-324",
        "2147483647", "2147483648", "-2147483648", "-2147483649", "9223372036854775807", "9223372036854775808", "1e19", "123456789012345678901234567890",
        "\"\\ud800\"", "\"\\udc00x\"", "\"\\ud83d\\ude00\"", "\"\\u0000\"", "\"\u202Eevil\"", "\"e\u0301\u0301\u0301\"", "\"\U0001F600\"", "\"\uFEFF\"",
        "\"<|eot_id|>\"", "\"" + new string('a', 10_000) + "\"", "[" + string.Join(",", Enumerable.Repeat("1", 1000)) + "]",
    ];

    /// <summary>Byte-level damage: one to four operations applied in order.</summary>
    public static Gen<byte[]> Bytes(byte[] original)
    {
        Gen<Func<byte[], byte[]>> operation = Gen.OneOf(
            Gen.Double[0, 1].Select(f => (Func<byte[], byte[]>)(b => b[..(int)(b.Length * f)])),
            Gen.Select(Gen.Double[0, 1], Gen.Byte[1, 255], (f, mask) => (Func<byte[], byte[]>)(b => Flip(b, f, mask))),
            Gen.Select(Gen.Double[0, 1], Gen.Int[0, Fragments.Length - 1], (f, i) => (Func<byte[], byte[]>)(b => Insert(b, f, Encoding.UTF8.GetBytes(Fragments[i])))),
            Gen.Select(Gen.Double[0, 1], Gen.Byte, (f, value) => (Func<byte[], byte[]>)(b => Insert(b, f, [value]))),
            Gen.Select(Gen.Double[0, 1], Gen.Int[1, 64], (f, n) => (Func<byte[], byte[]>)(b => Cut(b, f, n))),
            Gen.Select(Gen.Double[0, 1], Gen.Int[1, 64], (f, n) => (Func<byte[], byte[]>)(b => Repeat(b, f, n))));
        return operation.Array[1, 4].Select(ops => ops.Aggregate(original, (bytes, op) => op(bytes)));
    }

    /// <summary>JSON-level damage: a random walk into the document, then one change where it stops.</summary>
    public static Gen<string> Json(string original) =>
        Gen.Select(Gen.Int[0, int.MaxValue].Array[1, 8], Gen.Int[0, 3], Gen.Int[0, Replacements.Length - 1], (walk, action, replacement) =>
            Apply(original, walk, action, Replacements[replacement]));

    /// <summary>Either kind of damage, in equal measure.</summary>
    public static Gen<byte[]> Any(string originalJson) =>
        Gen.Frequency((1, Bytes(Encoding.UTF8.GetBytes(originalJson))), (1, Json(originalJson).Select(Encoding.UTF8.GetBytes)));

    private static string Apply(string original, int[] walk, int action, string replacement)
    {
        JsonNode root = JsonNode.Parse(original)!;
        JsonNode node = root;
        foreach (int step in walk)
        {
            // Stop early now and then, so that containers near the root are changed too.
            if (step % 5 == 0)
            {
                break;
            }

            JsonNode? child = node switch
            {
                JsonObject o when o.Count > 0 => o.ElementAt(step % o.Count).Value,
                JsonArray a when a.Count > 0 => a[step % a.Count],
                _ => null,
            };
            if (child is null)
            {
                break;
            }

            node = child;
        }

        const string Placeholder = "\"__replacement__\"";
        JsonNode? parent = node.Parent;
        switch (action)
        {
            case 0 when parent is JsonObject o:
                o.Remove(node.GetPropertyName());
                return root.ToJsonString();
            case 1 when parent is JsonObject o:
                // A key written twice: JsonObject cannot hold that, so it is spliced into the text.
                string name = node.GetPropertyName();
                o[name] = JsonValue.Create("__replacement__");
                string text = root.ToJsonString();
                string key = System.Text.Json.JsonSerializer.Serialize(name);
                return text.Replace(key + ":" + Placeholder, key + ":" + replacement + "," + key + ":" + node.ToJsonString(), StringComparison.Ordinal);
            case 2 when parent is JsonArray a:
                a.Add(JsonValue.Create("__replacement__"));
                return root.ToJsonString().Replace(Placeholder, replacement, StringComparison.Ordinal);
        }

        if (parent is null)
        {
            return replacement;
        }

        node.ReplaceWith(JsonValue.Create("__replacement__"));
        return root.ToJsonString().Replace(Placeholder, replacement, StringComparison.Ordinal);
    }

    private static int At(byte[] bytes, double fraction) => Math.Min(bytes.Length, (int)(bytes.Length * fraction));

    private static byte[] Flip(byte[] bytes, double fraction, byte mask)
    {
        if (bytes.Length == 0)
        {
            return bytes;
        }

        byte[] copy = (byte[])bytes.Clone();
        copy[Math.Min(copy.Length - 1, At(copy, fraction))] ^= mask;
        return copy;
    }

    private static byte[] Insert(byte[] bytes, double fraction, byte[] inserted)
    {
        int at = At(bytes, fraction);
        return [.. bytes.AsSpan(0, at), .. inserted, .. bytes.AsSpan(at)];
    }

    private static byte[] Cut(byte[] bytes, double fraction, int length)
    {
        int at = At(bytes, fraction);
        int end = Math.Min(bytes.Length, at + length);
        return [.. bytes.AsSpan(0, at), .. bytes.AsSpan(end)];
    }

    private static byte[] Repeat(byte[] bytes, double fraction, int length)
    {
        int at = At(bytes, fraction);
        int end = Math.Min(bytes.Length, at + length);
        return [.. bytes.AsSpan(0, end), .. bytes.AsSpan(at, end - at), .. bytes.AsSpan(end)];
    }
}
