using System.Globalization;
using System.Text;
using System.Text.Json;

namespace BlockAttention.Cli.Bench;

/// <summary>Writes a run as a console table, a markdown report and JSON.</summary>
internal static class ReportWriter
{
    private static readonly string[] s_columns =
        ["tokens", "passages", "full ms", "block ms", "cold ms", "re-enc ms", "re-enc reused ms", "final ms", "full/block", "re-enc %", "decode tok/s", "KV MiB", "peak RSS MiB", "GPU MiB"];

    private static readonly int[] s_widths = [6, 8, 9, 8, 9, 9, 16, 8, 10, 8, 12, 7, 12, 7];

    public static string ConsoleHeader()
    {
        var line = new StringBuilder();
        for (int i = 0; i < s_columns.Length; i++)
        {
            line.Append(s_columns[i].PadLeft(s_widths[i])).Append(' ');
        }

        return line.ToString().TrimEnd();
    }

    public static string ConsoleRow(LengthResult row)
    {
        var line = new StringBuilder();
        string[] cells = Cells(row);
        for (int i = 0; i < cells.Length; i++)
        {
            line.Append(cells[i].PadLeft(s_widths[i])).Append(' ');
        }

        return line.ToString().TrimEnd();
    }

    /// <summary>The many-requests table (markdown, also printed): batched against one at a time per concurrency level.</summary>
    public static IEnumerable<string> ConcurrencyLines(IReadOnlyList<ConcurrencyResult>? levels)
    {
        if (levels is not { Count: > 0 })
        {
            yield break;
        }

        yield return "| concurrency | requests | batched tok/s | one at a time tok/s | ratio | TTFT p50 / p95 ms batched | one at a time | TPOT p50 / p95 ms batched | one at a time |";
        yield return "|---:|---:|---:|---:|---:|---:|---:|---:|---:|";
        foreach (var level in levels)
        {
            var serial = level.Serial!;
            yield return Invariant($"| {level.Concurrency} | {level.Requests} | {level.OutputTokensPerSecond:F1} | {serial.OutputTokensPerSecond:F1} | {level.ThroughputRatio:F2}x | {level.TtftP50Ms:F0} / {level.TtftP95Ms:F0} | {serial.TtftP50Ms:F0} / {serial.TtftP95Ms:F0} | {level.TpotP50Ms:F1} / {level.TpotP95Ms:F1} | {serial.TpotP50Ms:F1} / {serial.TpotP95Ms:F1} |");
        }
    }

    public static string Markdown(BenchReport report)
    {
        var md = new StringBuilder();
        var machine = report.Machine;
        md.AppendLine(Invariant($"# blockattn bench: {report.Model} on {report.Device} ({report.DType})"));
        md.AppendLine();
        md.AppendLine(Invariant($"- Machine: {machine.Label}; CPU {machine.Cpu}, {machine.Cores} cores ({machine.TorchThreads} torch threads), {Gib(machine.MemoryBytes)} GiB"));
        if (machine.Gpu is not null)
        {
            md.AppendLine(Invariant($"- GPU: {machine.Gpu}, {Gib(machine.GpuMemoryBytes)} GiB, CUDA driver {machine.CudaDriver}"));
        }

        md.AppendLine(Invariant($"- Software: {machine.Runtime}, TorchSharp {machine.TorchSharp}, {machine.Os}"));
        string load = machine.LoadAverage is [double start, double end] ? Invariant($"; load average {start:F1} at the start, {end:F1} at the end") : "";
        md.AppendLine(Invariant($"- Date: {report.Date:yyyy-MM-dd HH:mm} UTC; whole run {report.TotalSeconds:F0} s{load}"));
        var shape = report.Shape;
        md.AppendLine(Invariant($"- Model: {report.Model} ({(report.RandomWeights ? "random weights" : "checkpoint")}), {shape.Parameters / 1e6:F0}M parameters, {shape.Layers} layers, {shape.Heads} heads / {shape.KvHeads} KV heads of {shape.HeadDim}, {shape.KvBytesPerToken / 1024.0:F0} KiB of KV per token"));
        md.AppendLine(Invariant($"- Prompt: instruction {report.Prompt.InstructionTokens} tokens, passages of ~{report.Prompt.PassageTokens}, final block {report.Prompt.FinalTokens}; {report.Warmup} warm-up + {report.Repeats} measured runs per figure (medians), decode {report.DecodeTokens} tokens"));
        bool segments = report.CachedBlocks == SegmentTable;
        if (report.CachedBlocks is not null)
        {
            md.AppendLine(Invariant($"- Cached passages: {(segments ? "segment table: read in place by BlockAttention's CUDA kernels (no copy, no re-rotation; the queries are rotated per passage)" : "assembly: re-encoded (keys rotated) into each request's cache")}"));
        }

        md.AppendLine();
        var columns = segments ? s_columns.Select(c => c.Replace("re-enc", "segment table", StringComparison.Ordinal)).ToArray() : s_columns;
        md.AppendLine("| " + string.Join(" | ", columns) + " |");
        md.AppendLine("|" + string.Concat(s_columns.Select(_ => "---:|")));
        foreach (var row in report.Lengths)
        {
            md.AppendLine("| " + string.Join(" | ", Cells(row)) + " |");
        }

        md.AppendLine();
        md.AppendLine("Medians, with the spread (min-max) of the TTFT figures:");
        md.AppendLine();
        md.AppendLine("| tokens | full ms | block ms | cold ms | re-enc ms | final ms | full wall ms | block wall ms | CPU used by other processes |");
        md.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var row in report.Lengths)
        {
            string others = row.OtherCpuShare is double share ? Invariant($"{share:P0}") : "-";
            md.AppendLine(Invariant($"| {row.Tokens} | {Spread(row.FullTtft)} | {Spread(row.BlockTtft)} | {Spread(row.ColdTtft)} | {Spread(row.Reencode)} | {Spread(row.FinalForward)} | {Ms(row.FullWall.Median)} | {Ms(row.BlockWall.Median)} | {others} |"));
        }

        if (report.Soak is { } soak)
        {
            md.AppendLine();
            string gpu = soak.GpuEndBytes is null ? "" : $"; GPU {Mib(soak.GpuStartBytes)} -> {Mib(soak.GpuAfterWarmupBytes)} -> {Mib(soak.GpuEndBytes)} MiB";
            md.AppendLine(Invariant($"Soak: {soak.Requests} block requests at {soak.Tokens} tokens ({soak.WarmupRequests} warm-up), block TTFT median {Ms(soak.BlockTtft.Median)} ms; RSS {Mib(soak.RssStartBytes)} -> {Mib(soak.RssAfterWarmupBytes)} -> {Mib(soak.RssEndBytes)} MiB (start, after warm-up, end){gpu}."));
        }

        md.AppendLine();
        md.AppendLine("## Checks");
        md.AppendLine();
        if (report.Checks.Count == 0)
        {
            md.AppendLine("None asked for (`--expect-speedup`, `--expect-reencode-share`, `--expect-block-ttft`, `--baseline`, `--soak`).");
        }

        foreach (var check in report.Checks)
        {
            md.AppendLine(Invariant($"- **{(check.Passed ? "PASS" : "FAIL")}** {check.Name}: {check.Detail}"));
        }

        if (report.Concurrent is { } concurrent)
        {
            string gpu = concurrent.GpuAfterBytes is long after && concurrent.GpuBeforeBytes is long before
                ? Invariant($"GPU used {Mib(before)} -> {Mib(after)} MiB ({(after - before) / (1024.0 * 1024.0):+0;-0} MiB)")
                : "GPU memory not read";
            md.AppendLine();
            md.AppendLine(Invariant($"Concurrency: {concurrent.Requests} requests at once over the same {concurrent.Tokens}-token passages (their KV: {Mib(concurrent.PassageKvBytes)} MiB once), each with its own question and {report.DecodeTokens} decoded tokens: {gpu}; {concurrent.WallMs:F0} ms for all."));
        }

        if (report.ConcurrencyLevels is { Count: > 0 } levels)
        {
            md.AppendLine();
            md.AppendLine("## Many requests at once");
            md.AppendLine();
            foreach (string line in ConcurrencyLines(levels))
            {
                md.AppendLine(line);
            }
        }

        md.AppendLine();
        md.AppendLine("## How to read this");
        md.AppendLine();
        md.AppendLine("- *full*: full-attention TTFT, the whole prompt through the model (cold prefill).");
        md.AppendLine("- *block*: Block-Attention TTFT with every passage already in the store: store lookups, re-encoding + assembly, the 50-token final block.");
        md.AppendLine("- *cold*: Block-Attention TTFT with an empty store: every passage encoded on its own first.");
        if (segments)
        {
            md.AppendLine("- *segment table*: what replaces re-encoding when the model reads cached blocks in place: taking a reference on each block and attaching them to the request's cache (the kernels' table of segments is built in the final block's forward pass, inside *final*).");
        }

        md.AppendLine("- *re-enc*: re-encoding (rotating cached keys to their offsets) and assembly, alone, into a freshly allocated KV cache.");
        md.AppendLine("- *re-enc reused*: the same into a cache allocated once and reused, which is what a request pays: `BlockSession` keeps request caches between requests. The difference to *re-enc* is the first touch of new memory. *re-enc %* is this figure's share of *block*.");
        md.AppendLine("- *final*: the final block's forward pass over the assembled cache, alone (no sampling).");
        md.AppendLine("- TTFT is what `GenerationResult.TimeToFirstToken` reports; the wall-clock columns time the whole call with device synchronisation before and after.");
        md.AppendLine(Invariant($"- Memory: {report.MemoryMethod}"));
        md.AppendLine("- *CPU used by other processes*: the share of all cores that other processes (and other VMs: steal) used while the length ran; CPU timings are comparable only when it is low.");
        return md.ToString();
    }

    /// <summary>The value of <see cref="BenchReport.CachedBlocks"/> when cached blocks are read in place.</summary>
    public const string SegmentTable = "segment table";

    public static void WriteFiles(BenchReport report, string directory, out string jsonPath, out string markdownPath)
    {
        Directory.CreateDirectory(directory);
        string stem = $"bench-{report.Model}-{(report.Device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) ? "cuda" : "cpu")}";
        jsonPath = Path.Combine(directory, stem + ".json");
        markdownPath = Path.Combine(directory, stem + ".md");
        File.WriteAllText(jsonPath, JsonSerializer.Serialize(report, BenchReport.JsonOptions));
        File.WriteAllText(markdownPath, Markdown(report));
    }

    private static string[] Cells(LengthResult row) =>
    [
        row.Tokens.ToString(CultureInfo.InvariantCulture),
        row.Passages.ToString(CultureInfo.InvariantCulture),
        Ms(row.FullTtft.Median),
        Ms(row.BlockTtft.Median),
        Ms(row.ColdTtft.Median),
        Ms(row.Reencode.Median),
        Ms(row.ReencodeReusedCache?.Median ?? double.NaN),
        Ms(row.FinalForward.Median),
        Invariant($"{row.Speedup:F1}x"),
        Invariant($"{row.ReencodeShare * 100:F0}%"),
        double.IsNaN(row.DecodeTokensPerSecond.Median) ? "-" : Invariant($"{row.DecodeTokensPerSecond.Median:F1}"),
        Mib(row.KvBytes),
        Mib(row.PeakRssBytes),
        Mib(row.GpuUsedBytes),
    ];

    /// <summary>Three significant figures or so: 0.842, 12.4, 3652.</summary>
    public static string Ms(double ms) => ms switch
    {
        double.NaN => "-",
        < 10 => ms.ToString("F2", CultureInfo.InvariantCulture),
        < 100 => ms.ToString("F1", CultureInfo.InvariantCulture),
        _ => ms.ToString("F0", CultureInfo.InvariantCulture),
    };

    private static string Spread(Summary summary) => $"{Ms(summary.Median)} ({Ms(summary.Min)}-{Ms(summary.Max)})";

    private static string Mib(long? bytes) => bytes is long b ? (b / (1024.0 * 1024.0)).ToString("F0", CultureInfo.InvariantCulture) : "-";

    private static string Gib(long? bytes) => bytes is long b ? (b / (1024.0 * 1024.0 * 1024.0)).ToString("F1", CultureInfo.InvariantCulture) : "?";

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
