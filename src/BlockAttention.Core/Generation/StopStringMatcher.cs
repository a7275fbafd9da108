namespace BlockAttention.Generation;

/// <summary>Finds stop strings in generated text, and how much text is safe to stream before one could begin.</summary>
internal sealed class StopStringMatcher(IReadOnlyList<string> stopStrings)
{
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
    /// How many leading characters of <paramref name="text"/> can be emitted: all but the longest
    /// tail that is the beginning of some stop string (it may still grow into one).
    /// </summary>
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
