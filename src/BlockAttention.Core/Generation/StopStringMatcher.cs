using System.Text;

namespace BlockAttention.Generation;

/// <summary>
/// Finds stop strings in generated text, and how much text is safe to stream before one could
/// begin. Works on the tail of the text that a stop string could touch, so each generated token
/// costs time in the length of its piece and of the stop strings, not of the text so far.
/// </summary>
internal sealed class StopStringMatcher(IReadOnlyList<string> stopStrings)
{
    private readonly int _longest = stopStrings.Count == 0 ? 0 : stopStrings.Max(s => s.Length);

    /// <summary>The index of the earliest stop string in <paramref name="text"/>, or -1.</summary>
    public int FindStop(string text)
    {
        int earliest = -1;
        foreach (string stop in stopStrings)
        {
            int found = text.IndexOf(stop, StringComparison.Ordinal);
            if (found >= 0 && (earliest < 0 || found < earliest))
            {
                earliest = found;
            }
        }

        return earliest;
    }

    /// <summary>
    /// Appends <paramref name="piece"/> to <paramref name="text"/> (which held no stop string) and
    /// looks for a stop string in what the piece could complete: the piece and the characters
    /// before it where a stop string could start. When one is found, cuts the text where it begins
    /// and returns true.
    /// </summary>
    public bool AppendAndCut(StringBuilder text, string? piece)
    {
        if (string.IsNullOrEmpty(piece))
        {
            return false;
        }

        int from = Math.Max(0, text.Length - Math.Max(0, _longest - 1));
        text.Append(piece);
        int found = FindStop(text.ToString(from, text.Length - from));
        if (found < 0)
        {
            return false;
        }

        text.Length = from + found;
        return true;
    }

    /// <summary>
    /// How many leading characters of <paramref name="text"/> can be emitted: all but the longest
    /// tail that is the beginning of some stop string (it may still grow into one).
    /// </summary>
    public int SafeLength(StringBuilder text)
    {
        int from = Math.Max(0, text.Length - Math.Max(0, _longest - 1));
        return from + SafeLength(text.ToString(from, text.Length - from));
    }

    /// <inheritdoc cref="SafeLength(StringBuilder)"/>
    public int SafeLength(string text)
    {
        int holdBack = 0;
        foreach (string stop in stopStrings)
        {
            for (int length = Math.Min(stop.Length - 1, text.Length); length > holdBack; length--)
            {
                if (text.AsSpan(text.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    holdBack = length;
                    break;
                }
            }
        }

        return text.Length - holdBack;
    }
}
