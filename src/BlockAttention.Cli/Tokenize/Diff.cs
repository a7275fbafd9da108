using System.Text;

namespace BlockAttention.Cli.Tokenize;

/// <summary>Describes the first difference between an expected and an actual result, for a check's report.</summary>
internal static class Diff
{
    private const int Context = 3;

    /// <summary>Returns <see langword="null"/> when equal, else where the id lists first differ, with a few ids around it.</summary>
    public static string? Ids(IReadOnlyList<int> expected, IReadOnlyList<int> actual)
    {
        int at = FirstDifference(expected.Count, actual.Count, i => expected[i] == actual[i]);
        if (at < 0)
        {
            return null;
        }

        return $"ids differ at position {at} (expected {expected.Count} ids, got {actual.Count}): " +
            $"expected [{Window(expected, at)}], got [{Window(actual, at)}]";
    }

    /// <summary>Returns <see langword="null"/> when equal, else where the texts first differ, with the text around it.</summary>
    public static string? Text(string expected, string actual)
    {
        int at = FirstDifference(expected.Length, actual.Length, i => expected[i] == actual[i]);
        if (at < 0)
        {
            return null;
        }

        int start = Math.Max(0, at - 10);
        return $"text differs at char {at}: expected {Quote(expected[start..], 30)}, got {Quote(actual[start..], 30)}";
    }

    /// <summary>
    /// The text in quotes with control characters escaped (so "\r\n" shows), cut to <paramref name="max"/>
    /// characters; other characters, emoji included, are printed as they are.
    /// </summary>
    public static string Quote(string text, int max)
    {
        // Never cut between the two halves of a surrogate pair.
        int length = text.Length <= max ? text.Length : char.IsHighSurrogate(text[max - 1]) ? max - 1 : max;
        var quoted = new StringBuilder("\"");
        foreach (char c in text.AsSpan(0, length))
        {
            quoted.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '"' => "\\\"",
                '\\' => "\\\\",
                _ when char.IsControl(c) => $"\\u{(int)c:X4}",
                _ => c.ToString(),
            });
        }

        return quoted.Append(length == text.Length ? "\"" : "…\"").ToString();
    }

    private static int FirstDifference(int expectedCount, int actualCount, Func<int, bool> equalAt)
    {
        int common = Math.Min(expectedCount, actualCount);
        for (int i = 0; i < common; i++)
        {
            if (!equalAt(i))
            {
                return i;
            }
        }

        return expectedCount == actualCount ? -1 : common;
    }

    private static string Window(IReadOnlyList<int> ids, int at)
    {
        int start = Math.Max(0, at - Context);
        int end = Math.Min(ids.Count, at + Context + 1);
        string before = start > 0 ? "… " : string.Empty;
        string after = end < ids.Count ? " …" : string.Empty;
        return before + string.Join(' ', Enumerable.Range(start, end - start).Select(i => i == at ? $">{ids[i]}<" : ids[i].ToString())) + after;
    }
}
