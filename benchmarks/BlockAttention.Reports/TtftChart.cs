using BlockAttention.Cli.Bench;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace BlockAttention.Reports;

/// <summary>
/// TTFT against prompt length, full attention against Block-Attention, both axes logarithmic: the
/// lengths double from row to row and the two curves differ by orders of magnitude.
/// </summary>
/// <remarks>
/// ScottPlot 5 has no log axis type; the documented way is to plot log10 of the values and label
/// the ticks with the powers they stand for, with log-spaced minor ticks.
/// </remarks>
internal static class TtftChart
{
    public static void Write(BenchReport report, IReadOnlyList<HfBaselineRow>? baseline, string path)
    {
        var rows = report.Lengths.OrderBy(r => r.Tokens).ToArray();
        double[] x = [.. rows.Select(r => Math.Log2(r.Tokens))];
        var plot = new Plot();

        AddSeries(plot, x, rows.Select(r => r.FullTtft.Median), "full attention", Colors.FireBrick, LinePattern.Solid, MarkerShape.FilledCircle);
        AddSeries(plot, x, rows.Select(r => r.ColdTtft.Median), "block, cold store (every passage encoded)", Colors.DarkOrange, LinePattern.Dashed, MarkerShape.OpenCircle);
        AddSeries(plot, x, rows.Select(r => r.BlockTtft.Median), "block, all passages cached", Colors.RoyalBlue, LinePattern.Solid, MarkerShape.FilledSquare);
        if (baseline is not null)
        {
            var matched = baseline.Where(b => rows.Any(r => r.Tokens == b.Tokens)).OrderBy(b => b.Tokens).ToArray();
            double[] bx = [.. matched.Select(b => Math.Log2(b.Tokens))];
            AddSeries(plot, bx, matched.Select(b => b.FullMs), "transformers full (same card)", Colors.Gray, LinePattern.Dotted, MarkerShape.FilledCircle);
            AddSeries(plot, bx, matched.Select(b => b.BlockMs), "transformers block (same card)", Colors.DarkGray, LinePattern.Dotted, MarkerShape.FilledSquare);
        }

        // The speedup under each cached-block point: the number the chart is about.
        foreach (var (row, position) in rows.Zip(x))
        {
            var label = plot.Add.Text(row.Speedup >= 10 ? $"{row.Speedup:F0}x" : $"{row.Speedup:F1}x", position, Math.Log10(row.BlockTtft.Median));
            label.LabelFontSize = 12;
            label.LabelFontColor = Colors.RoyalBlue;
            label.LabelAlignment = Alignment.UpperCenter;
            label.OffsetY = 10;
        }

        plot.Axes.Bottom.TickGenerator = new NumericManual(x, [.. rows.Select(r => Tokens(r.Tokens))]);
        plot.Axes.Left.TickGenerator = new NumericAutomatic
        {
            MinorTickGenerator = new LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = y => Milliseconds(Math.Pow(10, y)),
        };
        plot.Axes.Left.Label.Text = "time to first token (log scale)";
        plot.Axes.Bottom.Label.Text = "prompt tokens (log scale)";
        plot.Grid.MajorLineColor = Colors.Black.WithAlpha(0.15);
        plot.Grid.MinorLineColor = Colors.Black.WithAlpha(0.05);
        plot.Grid.MinorLineWidth = 1;
        string where = report.Machine.Gpu ?? report.Machine.Label;
        plot.Title($"{report.Model} ({report.DType}) on {where}: TTFT, full vs Block-Attention");
        plot.Axes.Title.Label.FontSize = 15;
        plot.Legend.Alignment = Alignment.UpperLeft;
        plot.ShowLegend();
        // Whole decades around the data, with room below the lowest point for the speedup labels.
        var all = rows.SelectMany(r => new[] { r.FullTtft.Median, r.ColdTtft.Median, r.BlockTtft.Median })
            .Concat(baseline?.SelectMany(b => new[] { b.FullMs, b.BlockMs }) ?? []).Where(ms => ms > 0).Select(Math.Log10).ToArray();
        plot.Axes.SetLimits(x.Min() - 0.3, x.Max() + 0.3, Math.Floor(all.Min() - 0.2), Math.Ceiling(all.Max() + 0.3));
        plot.SavePng(path, 1000, 620);
    }

    private static void AddSeries(Plot plot, double[] x, IEnumerable<double> milliseconds, string legend, Color color, LinePattern pattern, MarkerShape marker)
    {
        double[] y = [.. milliseconds.Select(Math.Log10)];
        var series = plot.Add.Scatter(x, y);
        series.LegendText = legend;
        series.Color = color;
        series.LineWidth = 2;
        series.LinePattern = pattern;
        series.MarkerShape = marker;
        series.MarkerSize = 8;
    }

    private static string Tokens(int tokens) => tokens >= 1024 && tokens % 1024 == 0 ? $"{tokens / 1024}K" : tokens.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Milliseconds(double ms) => ms switch
    {
        >= 1000 => $"{ms / 1000:0.###} s",
        >= 1 => $"{ms:0} ms",
        _ => $"{ms:0.###} ms",
    };
}
