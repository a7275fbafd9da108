using System.Globalization;
using System.Text;
using BlockAttention.Cli.Bench;

namespace BlockAttention.Reports;

/// <summary>The README's results table: one row per run and length, full against block TTFT.</summary>
internal static class ResultsTable
{
    public static string Markdown(IReadOnlyList<(BenchReport Report, string Chart)> runs)
    {
        var md = new StringBuilder();
        md.AppendLine("| machine | date | model | dtype | tokens | full TTFT ms | block TTFT ms (cached) | block TTFT ms (cold store) | re-encoding ms (as a request pays it) | full / block |");
        md.AppendLine("|---|---|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var (report, _) in runs)
        {
            string machine = report.Machine.Gpu ?? report.Machine.Label;
            if (report.Machine.Gpu is not null && report.Machine.Label != report.Machine.Gpu)
            {
                machine = $"{report.Machine.Label} ({report.Machine.Gpu})";
            }

            foreach (var row in report.Lengths.OrderBy(r => r.Tokens))
            {
                md.AppendLine(Invariant(
                    $"| {machine} | {report.Date:yyyy-MM-dd} | {report.Model} | {report.DType} | {row.Tokens} | {Ms(row.FullTtft.Median)} | {Ms(row.BlockTtft.Median)} | {Ms(row.ColdTtft.Median)} | {Ms(row.SessionReencode.Median)} | {row.Speedup:F1}x |"));
            }
        }

        md.AppendLine();
        foreach (var (report, _) in runs)
        {
            foreach (var check in report.Checks)
            {
                md.AppendLine(Invariant($"- {report.Model} on {report.Device}: **{(check.Passed ? "PASS" : "FAIL")}** {check.Name}: {check.Detail}"));
            }
        }

        foreach (var (report, chart) in runs)
        {
            md.AppendLine();
            md.AppendLine($"![TTFT of {report.Model} on {report.Machine.Gpu ?? report.Machine.Label}]({chart})");
        }

        return md.ToString();
    }

    private static string Ms(double ms) => ms switch
    {
        double.NaN => "-",
        < 10 => ms.ToString("F2", CultureInfo.InvariantCulture),
        < 100 => ms.ToString("F1", CultureInfo.InvariantCulture),
        _ => ms.ToString("F0", CultureInfo.InvariantCulture),
    };

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
