namespace BlockAttention.Cli.Verify;

/// <summary>
/// How generated tokens compare with the reference's under the margin rule: step by step while
/// the reference's margin (best minus second-best logit) is at least the threshold. At a smaller
/// margin either token is a legitimate pick, and every later step depends on that pick, so the
/// comparison stops there; it also stops at the first disagreement, since later steps then see
/// a different prefix.
/// </summary>
/// <param name="Steps">Tokens the reference has.</param>
/// <param name="Compared">Steps compared (the disagreeing one included).</param>
/// <param name="Agreed">Steps that agreed.</param>
/// <param name="StoppedAt">The step whose reference margin fell below the threshold, if any.</param>
/// <param name="StopMargin">The reference margin at <paramref name="StoppedAt"/>.</param>
/// <param name="Threshold">The smallest margin at which tokens were compared.</param>
/// <param name="Mismatch">The first disagreement, described, if any.</param>
internal sealed record GreedyComparison(int Steps, int Compared, int Agreed, int? StoppedAt, double StopMargin, double Threshold, string? Mismatch)
{
    public bool Passed => Agreed == Compared;

    public static GreedyComparison Compare(IReadOnlyList<int> actual, GreedyReference reference, double threshold)
    {
        int agreed = 0;
        for (int step = 0; step < reference.Tokens.Length; step++)
        {
            double margin = reference.Margins[step];
            if (margin < threshold)
            {
                return new GreedyComparison(reference.Tokens.Length, agreed, agreed, step, margin, threshold, null);
            }

            int expected = reference.Tokens[step];
            if (step >= actual.Count || actual[step] != expected)
            {
                string got = step < actual.Count ? actual[step].ToString() : "nothing";
                return new GreedyComparison(reference.Tokens.Length, agreed + 1, agreed, null, 0, threshold,
                    $"step {step}: expected {expected}, got {got} (reference margin {margin:0.0e+00})");
            }

            agreed++;
        }

        return new GreedyComparison(reference.Tokens.Length, agreed, agreed, null, 0, threshold, null);
    }

    /// <summary>E.g. <c>greedy 6/6 agree, then reference margin 4.2e-03 &lt; 1e-02 at step 6 of 16</c>.</summary>
    public override string ToString()
    {
        if (Mismatch is not null)
        {
            return $"greedy {Agreed}/{Compared} agree: {Mismatch}";
        }

        if (StoppedAt is not { } step)
        {
            return $"greedy {Agreed}/{Steps} agree";
        }

        string stop = $"reference margin {StopMargin:0.0e+00} < {Threshold:0.0e+00} at step {step} of {Steps}";
        return Compared == 0 ? $"greedy not compared: {stop}" : $"greedy {Agreed}/{Compared} agree, then {stop}";
    }
}
