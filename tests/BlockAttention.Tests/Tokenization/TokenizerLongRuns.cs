using System.Globalization;
using System.Text;
using System.Text.Json;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Tokenization;

/// <summary>
/// The cases of <c>tests/fixtures/tokenizer_long_runs.json</c>: Hugging Face <c>tokenizers</c> ids for long runs of
/// one character class (up to a million characters) and for random mixtures, made by
/// <c>tests/fixtures/make_tokenizer_long_runs.js</c>.
/// </summary>
internal static class TokenizerLongRuns
{
    private static readonly Lazy<IReadOnlyList<Case>> s_cases = new(Load);

    public static IReadOnlyList<Case> Cases => s_cases.Value;

    private static IReadOnlyList<Case> Load()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(FixturePaths.Root, "tokenizer_long_runs.json")));
        return document.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => new Case(
                c.GetProperty("name").GetString()!,
                RawString(c.GetProperty("prefix")),
                RawString(c.GetProperty("unit")),
                c.GetProperty("repeat").GetInt32(),
                RawString(c.GetProperty("suffix")),
                c.GetProperty("ids").EnumerateArray()
                    .Select(item => (Ids: item[0].EnumerateArray().Select(id => id.GetInt32()).ToArray(), Count: item[1].GetInt32()))
                    .ToArray()))
            .ToArray();
    }

    /// <summary>
    /// Reads a JSON string that may hold lone surrogate escapes (<c>\ud800</c>), which
    /// <see cref="JsonElement.GetString"/> refuses.
    /// </summary>
    private static string RawString(JsonElement element)
    {
        string raw = element.GetRawText();
        var text = new StringBuilder(raw.Length);
        for (int i = 1; i < raw.Length - 1; i++)
        {
            if (raw[i] != '\\')
            {
                text.Append(raw[i]);
                continue;
            }

            char escape = raw[++i];
            text.Append(escape switch
            {
                'u' => (char)int.Parse(raw.AsSpan(i + 1, 4), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'b' => '\b',
                'f' => '\f',
                _ => escape, // \" \\ \/
            });
            i += escape == 'u' ? 4 : 0;
        }

        return text.ToString();
    }

    internal sealed record Case(string Name, string Prefix, string Unit, int Repeat, string Suffix, (int[] Ids, int Count)[] CompressedIds)
    {
        public string Text()
        {
            var text = new StringBuilder(Prefix.Length + (Unit.Length * Repeat) + Suffix.Length);
            text.Append(Prefix).Insert(text.Length, Unit, Repeat).Append(Suffix);
            return text.ToString();
        }

        public int[] Ids() => [.. CompressedIds.SelectMany(item => Enumerable.Repeat(item.Ids, item.Count).SelectMany(ids => ids))];
    }
}
