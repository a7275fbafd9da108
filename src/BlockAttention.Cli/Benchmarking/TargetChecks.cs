using System.Globalization;
using System.Text.Json;
using BlockAttention.Llama;

namespace BlockAttention.Cli.Benchmarking;

/// <summary>
/// The targets, checked against a run. A target applies only to the configuration it
/// names (model, device, length); a run of another configuration checks nothing here.
/// </summary>
internal static class TargetChecks
{
    public const double CpuMinimumSpeedup = 30;
    public const double CpuMaximumReencodeShare = 0.30;
    public const long SoakRssTolerance = 16L << 20;

    public static List<TargetCheck> Evaluate(BenchOptions options, MachineDescription machine, IReadOnlyList<LengthResult> rows, SoakResult? soak)
    {
        var checks = new List<TargetCheck>();
        string? preset = options.Preset?.ToLowerInvariant();
        if (preset == LlamaPresets.SmolLM2_135M && options.DeviceKind == "cpu" && rows.FirstOrDefault(r => r.Tokens == 4096) is { } cpu)
        {
            checks.Add(new TargetCheck("cpu: full / block TTFT at 4096 tokens", cpu.Speedup >= CpuMinimumSpeedup,
                Invariant($"{cpu.FullTtft.Median:F0} ms / {cpu.BlockTtft.Median:F1} ms = {cpu.Speedup:F1}x (target >= {CpuMinimumSpeedup}x)")));
            checks.Add(new TargetCheck("cpu: re-encoding + assembly share of block TTFT at 4096 tokens", cpu.ReencodeShare <= CpuMaximumReencodeShare,
                Invariant($"{cpu.SessionReencode.Median:F1} ms (into a reused cache, as the session does) / {cpu.BlockTtft.Median:F1} ms = {cpu.ReencodeShare:P0} (target <= {CpuMaximumReencodeShare:P0})")));
        }

        if (preset == LlamaPresets.Llama31_8B && options.DeviceKind == "cuda" && rows.FirstOrDefault(r => r.Tokens == 32768) is { } gpu)
        {
            string card = $"{machine.Gpu} {machine.Label}";
            double? limit = card.Contains("H200", StringComparison.OrdinalIgnoreCase) ? 25
                : card.Contains("H100", StringComparison.OrdinalIgnoreCase) ? 35
                : null;
            if (limit is double ms)
            {
                checks.Add(new TargetCheck("gpu: block TTFT at 32768 tokens", gpu.BlockTtft.Median <= ms,
                    Invariant($"{gpu.BlockTtft.Median:F1} ms on {machine.Gpu ?? machine.Label} (target <= {ms} ms)")));
            }
        }

        if (options.BaselinePath is not null)
        {
            var baseline = ReadBaseline(options.BaselinePath);
            foreach (var row in rows)
            {
                if (baseline.TryGetValue(row.Tokens, out double hfFull))
                {
                    checks.Add(new TargetCheck($"full TTFT at {row.Tokens} tokens no slower than transformers", row.FullTtft.Median <= hfFull,
                        Invariant($"{row.FullTtft.Median:F1} ms vs {hfFull:F1} ms")));
                }
            }
        }

        if (soak is not null)
        {
            checks.Add(new TargetCheck($"soak: no RSS growth over {soak.Requests} requests", soak.RssGrowthBytes <= SoakRssTolerance,
                Invariant($"{Mib(soak.RssAfterWarmupBytes):F1} MiB after warm-up -> {Mib(soak.RssEndBytes):F1} MiB at the end ({Mib(soak.RssGrowthBytes):+0.0;-0.0} MiB; tolerance {Mib(SoakRssTolerance):F0} MiB)")));
            if (soak.GpuGrowthBytes is long gpuGrowth)
            {
                checks.Add(new TargetCheck($"soak: no GPU memory growth over {soak.Requests} requests", gpuGrowth <= 0,
                    Invariant($"{Mib(soak.GpuAfterWarmupBytes!.Value):F1} MiB after warm-up -> {Mib(soak.GpuEndBytes!.Value):F1} MiB at the end")));
            }
        }

        return checks;
    }

    /// <summary>Full-attention TTFT per length from <c>anchor_ttft.json</c> (rows of <c>L</c> and <c>full_ms</c>).</summary>
    public static Dictionary<int, double> ReadBaseline(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        var table = new Dictionary<int, double>();
        foreach (var row in document.RootElement.GetProperty("rows").EnumerateArray())
        {
            table[row.GetProperty("L").GetInt32()] = row.GetProperty("full_ms").GetDouble();
        }

        return table;
    }

    private static double Mib(long bytes) => bytes / (1024.0 * 1024.0);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
