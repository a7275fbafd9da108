using System.Globalization;
using System.Text;
using BlockAttention.Evaluation;

namespace BlockAttention.Cli.Eval;

/// <summary>A mode's figures: accuracy, TTFT percentiles, store hit rate.</summary>
internal sealed record EvalSummary(string Mode, int Records, double Accuracy, double TtftP50Ms, double TtftP95Ms, long ReusedBlocks, long LocalBlocks)
{
    public static EvalSummary Of(string mode, IReadOnlyList<EvalOutcome> outcomes)
    {
        var ttft = outcomes.Select(o => o.Result.TimeToFirstToken.TotalMilliseconds).Order().ToArray();
        return new EvalSummary(mode, outcomes.Count, RagAnswerMetric.Accuracy(outcomes.Select(o => o.Correct)),
            Percentile(ttft, 50), Percentile(ttft, 95),
            outcomes.Sum(o => (long)o.Result.ReusedBlocks), outcomes.Sum(o => (long)o.Result.LocalBlocks));
    }

    /// <summary>Linear interpolation between the closest ranks (numpy's default) over sorted values.</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double percent)
    {
        if (sorted.Count == 0)
        {
            return double.NaN;
        }

        double rank = percent / 100 * (sorted.Count - 1);
        int below = (int)Math.Floor(rank);
        int above = Math.Min(below + 1, sorted.Count - 1);
        return sorted[below] + (rank - below) * (sorted[above] - sorted[below]);
    }

    /// <summary>The table printed at the end: one row per mode.</summary>
    public static string Table(IReadOnlyList<EvalSummary> summaries, int records, string dataPath)
    {
        var text = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        text.AppendLine(c, $"{records} records from {dataPath}");
        text.AppendLine("mode   accuracy  TTFT p50    TTFT p95    store hit rate");
        foreach (var s in summaries)
        {
            string hits = s.Mode == "block"
                ? s.LocalBlocks == 0 ? "no local blocks" : string.Create(c, $"{100.0 * s.ReusedBlocks / s.LocalBlocks:0.0}% ({s.ReusedBlocks}/{s.LocalBlocks} blocks)")
                : "- (full attention uses no store)";
            text.AppendLine(c, $"{s.Mode,-6} {s.Accuracy,7:0.0}%  {s.TtftP50Ms,8:0.0} ms {s.TtftP95Ms,8:0.0} ms  {hits}");
        }

        return text.ToString();
    }
}
