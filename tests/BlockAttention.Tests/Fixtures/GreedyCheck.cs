namespace BlockAttention.Tests.Fixtures;

/// <summary>The fixtures README's margin rule for greedy tokens.</summary>
internal static class GreedyCheck
{
    public const double MarginThreshold = 1e-2;

    /// <summary>
    /// Compares step by step while the reference's margin at that step is at least 1e-2; from
    /// the first step with a smaller margin on, either token is legitimate, so comparison stops.
    /// Returns how many steps were compared.
    /// </summary>
    public static int AssertMatches(IReadOnlyList<int> actual, IReadOnlyList<int> expected, IReadOnlyList<double> margins, string because)
    {
        int compared = 0;
        for (int step = 0; step < expected.Count; step++)
        {
            if (margins[step] < MarginThreshold)
            {
                break;
            }

            actual.Count.Should().BeGreaterThan(step, $"{because}: too few tokens");
            actual[step].Should().Be(expected[step], $"{because}: token {step} (reference margin {margins[step]:G3})");
            compared++;
        }

        return compared;
    }
}
