namespace BlockAttention.Training.Data;

/// <summary>A Fisher-Yates shuffle driven by <see cref="Random"/> with a seed: the same seed gives the same order on every run and machine.</summary>
public static class SeededShuffle
{
    /// <summary>Shuffles <paramref name="items"/> in place.</summary>
    public static void Shuffle<T>(IList<T> items, int seed)
    {
        ArgumentNullException.ThrowIfNull(items);
        // Random(seed) uses the same algorithm on every .NET version, unlike the unseeded one.
        var random = new Random(seed);
        for (int i = items.Count - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }
}
