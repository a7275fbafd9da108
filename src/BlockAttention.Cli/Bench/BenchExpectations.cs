using System.Globalization;
using System.Text.Json;
using BlockAttention.IO;

namespace BlockAttention.Cli.Bench;

/// <summary>
/// The checks a bench run was asked for, judged against its figures: <c>--expect-speedup</c>,
/// <c>--expect-reencode-share</c> and <c>--expect-block-ttft</c> at the longest length,
/// <c>--baseline</c> at every length it lists, and, with <c>--soak</c>, no memory growth.
/// A run asked for none of them checks nothing and exits 0.
/// </summary>
internal static class BenchExpectations
{
    /// <summary>
    /// Resident-set growth over a soak that still counts as none: allocator arenas and the JIT
    /// settle for a while after warm-up, a leak of tensors grows without bound.
    /// </summary>
    public const long SoakRssTolerance = 16L << 20;

    public static List<BenchCheck> Evaluate(BenchOptions options, IReadOnlyList<LengthResult> rows, SoakResult? soak,
        IReadOnlyList<ConcurrencyResult>? concurrency = null)
    {
        var checks = new List<BenchCheck>();
        if (concurrency?.MaxBy(c => c.Concurrency) is { Serial: { } serial } highest && options.ExpectBatchSpeedup is double batchSpeedup)
        {
            checks.Add(new BenchCheck($"batched / one-at-a-time output throughput at concurrency {highest.Concurrency}", highest.ThroughputRatio >= batchSpeedup,
                Invariant($"{highest.OutputTokensPerSecond:F1} / {serial.OutputTokensPerSecond:F1} tokens/s = {highest.ThroughputRatio:F2}x (expected >= {batchSpeedup}x)")));
        }

        foreach (var level in concurrency ?? [])
        {
            if (level.ExactChecked is int exactChecked)
            {
                checks.Add(new BenchCheck($"batched tokens equal tokens alone at concurrency {level.Concurrency}", level.ExactIdentical == exactChecked,
                    Invariant($"{level.ExactIdentical} of {exactChecked} requests identical{(level.ExactDetail is { } detail ? "; " + detail : "")}")));
            }
        }

        var longest = rows.MaxBy(r => r.Tokens);
        if (longest is not null && options.ExpectSpeedup is double speedup)
        {
            checks.Add(new BenchCheck($"full / block TTFT at {longest.Tokens} tokens", longest.Speedup >= speedup,
                Invariant($"{longest.FullTtft.Median:F0} ms / {longest.BlockTtft.Median:F1} ms = {longest.Speedup:F1}x (expected >= {speedup}x)")));
        }

        if (longest is not null && options.ExpectReencodeShare is double share)
        {
            checks.Add(new BenchCheck($"re-encoding + assembly share of block TTFT at {longest.Tokens} tokens", longest.ReencodeShare <= share,
                Invariant($"{longest.SessionReencode.Median:F1} ms (into a reused cache, as the session does) / {longest.BlockTtft.Median:F1} ms = {longest.ReencodeShare:P0} (expected <= {share:P0})")));
        }

        if (longest is not null && options.ExpectBlockTtftMs is double limit)
        {
            checks.Add(new BenchCheck($"block TTFT at {longest.Tokens} tokens", longest.BlockTtft.Median <= limit,
                Invariant($"{longest.BlockTtft.Median:F1} ms (expected <= {limit} ms)")));
        }

        if (options.Baseline is { } baseline)
        {
            foreach (var row in rows)
            {
                if (baseline.FullTtftMs.TryGetValue(row.Tokens, out double baselineFull))
                {
                    checks.Add(new BenchCheck($"full TTFT at {row.Tokens} tokens no slower than the baseline", row.FullTtft.Median <= baselineFull,
                        Invariant($"{row.FullTtft.Median:F1} ms vs {baselineFull:F1} ms ({Path.GetFileName(baseline.Path)})")));
                }
            }
        }

        if (soak is not null)
        {
            checks.Add(new BenchCheck($"soak: no RSS growth over {soak.Requests} requests", soak.RssGrowthBytes <= SoakRssTolerance,
                Invariant($"{Mib(soak.RssAfterWarmupBytes):F1} MiB after warm-up -> {Mib(soak.RssEndBytes):F1} MiB at the end ({Mib(soak.RssGrowthBytes):+0.0;-0.0} MiB; tolerance {Mib(SoakRssTolerance):F0} MiB)")));
            if (soak.GpuGrowthBytes is long gpuGrowth)
            {
                checks.Add(new BenchCheck($"soak: no GPU memory growth over {soak.Requests} requests", gpuGrowth <= 0,
                    Invariant($"{Mib(soak.GpuAfterWarmupBytes!.Value):F1} MiB after warm-up -> {Mib(soak.GpuEndBytes!.Value):F1} MiB at the end")));
            }
        }

        return checks;
    }

    private static double Mib(long bytes) => bytes / (1024.0 * 1024.0);

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// Full-attention TTFT per prompt length measured elsewhere (for example by Hugging Face
/// <c>transformers</c> on the same card), to check ours against: <c>{"rows": [{"L": tokens, "full_ms": ms}]}</c>.
/// </summary>
internal sealed record BenchBaseline(string Path, IReadOnlyDictionary<int, double> FullTtftMs)
{
    /// <summary>Reads the file; a missing or malformed one is an <see cref="InputException"/> naming it.</summary>
    public static BenchBaseline Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new InputException($"baseline file not found: {path}");
        }

        try
        {
            using var document = StrictJson.Parse(InputFile.ReadAllBytes(path, Verify.GoldenJsonReader.MaxBytes, "baseline file"));
            var table = new Dictionary<int, double>();
            int index = 0;
            foreach (var row in document.RootElement.GetProperty("rows").EnumerateArray())
            {
                int tokens = row.GetProperty("L").GetInt32();
                double ms = row.GetProperty("full_ms").GetDouble();
                if (tokens <= 0 || !double.IsFinite(ms) || ms <= 0)
                {
                    throw new InputException($"{path}: rows[{index}] has L {tokens} and full_ms {ms}; both must be positive");
                }

                table[tokens] = ms;
                index++;
            }

            return new BenchBaseline(path, table);
        }
        catch (InputFileException e)
        {
            throw new InputException(e.Message, e);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new InputException($"{path}: not a baseline file of the form {{\"rows\": [{{\"L\": tokens, \"full_ms\": ms}}]}} ({e.Message})", e);
        }
    }
}
