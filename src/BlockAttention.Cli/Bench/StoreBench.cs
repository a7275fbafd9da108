using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using BlockAttention.Caching;
using BlockAttention.Caching.Persistence;
using BlockAttention.Generation;
using BlockAttention.Models;
using BlockAttention.Redis;

namespace BlockAttention.Cli.Bench;

/// <summary>
/// <c>blockattn bench --stores</c>: time to first token with the passages' states coming from each
/// kind of store (memory, the file store, Redis) against encoding them again, side by side in one
/// process on one prompt; plus the stored bytes per token and each store's fetch bandwidth.
/// </summary>
/// <remarks>
/// Each store is filled by one request, then every measured request asks a new question over the
/// same passages, so each passage is fetched from that store (the file and Redis stores are used
/// alone, without a memory tier, so every request pays the fetch; file reads come from the
/// operating system's page cache when it holds them). Fetch bandwidth is measured separately:
/// every passage read from the store, serialized bytes over wall time, device synchronised.
/// </remarks>
internal sealed class StoreBench(ICausalLanguageModel model, BenchOptions options, string? fileDirectory, string? redis, TextWriter progress)
{
    private static readonly GenerationOptions s_firstToken = new() { MaxNewTokens = 1 };
    private readonly DeviceClock _clock = new(model.Info.Device);
    private int _requests;

    /// <summary>The share of the CPU that other processes used during the last <see cref="RunAsync"/>, where it can be read.</summary>
    public double? LastOthersShare { get; private set; }

    public sealed record Row(string Source, double TtftMs, double? FetchMs, double? FetchBytesPerSecond, double? BytesPerToken, int Reused, int Encoded);

    public async Task<IReadOnlyList<Row>> RunAsync(int length)
    {
        var prompt = BenchPrompt.Create(length, model.Info.VocabSize, options.Seed);
        var settings = new KvBlockStoreSettings { DType = model.Info.DType, Device = model.Info.Device.ToString() };
        string directory = fileDirectory ?? Directory.CreateTempSubdirectory("blockattn-bench-store-").FullName;
        var sources = new List<(string Name, IKvBlockStore? Store, double? SerializedBytesPerToken)>
        {
            ("memory", new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 1L << 40 }), null),
            (fileDirectory is null ? "file (temp folder)" : $"file ({directory})", new FileKvBlockStore(new FileKvBlockStoreOptions
            {
                Directory = directory, MaxBytes = 1L << 40, DType = settings.DType, Device = settings.Device,
            }), SerializedBytesPerToken(prompt)),
        };
        if (redis is not null)
        {
            sources.Add(($"redis ({redis})", new RedisKvBlockStore(new RedisKvBlockStoreOptions
            {
                Configuration = redis, KeyPrefix = $"blockattn-bench:{Guid.NewGuid():N}:", TimeToLive = TimeSpan.FromMinutes(10),
                OperationTimeout = TimeSpan.FromSeconds(30), MaxBlockBytes = 512L << 20, DType = settings.DType, Device = settings.Device,
            }), SerializedBytesPerToken(prompt)));
        }

        sources.Add(("re-encoded (no store)", null, null));
        var contention = CpuContention.Start();
        try
        {
            var sessions = sources.Select(s => new BlockSession(model, s.Store)).ToList();
            for (int i = 0; i < sources.Count - 1; i++)
            {
                Expect(await sessions[i].GenerateAsync(prompt.ForRequest(_requests++), s_firstToken), reused: 0, sources[i].Name + " (filling)");
            }

            // Rounds: one request per source in turn, so that load from elsewhere on the machine
            // falls on every source alike; the first rounds are warm-up.
            var ttft = sources.Select(_ => new List<double>()).ToList();
            for (int round = 0; round < options.Warmup + options.Repeats; round++)
            {
                for (int i = 0; i < sources.Count; i++)
                {
                    var (ms, result) = await _clock.TimeAsync(() => sessions[i].GenerateAsync(prompt.ForRequest(_requests++), s_firstToken));
                    Expect(result, reused: sources[i].Store is null ? 0 : prompt.Passages.Count + 1, sources[i].Name);
                    if (round >= options.Warmup)
                    {
                        ttft[i].Add(ms);
                    }
                }
            }

            var rows = new List<Row>();
            for (int i = 0; i < sources.Count; i++)
            {
                var (name, store, perToken) = sources[i];
                double median = Summary.Of(ttft[i]).Median;
                if (store is null)
                {
                    rows.Add(new Row(name, median, null, null, null, 0, prompt.Passages.Count + 1));
                }
                else
                {
                    double? fetch = store is MemoryKvBlockStore ? null : await FetchAsync(name, store, prompt);
                    double? bandwidth = fetch is { } f && perToken is { } p ? p * prompt.CachedTokens / (f / 1000) : null;
                    rows.Add(new Row(name, median, fetch, bandwidth, perToken ?? model.Info.KvBytesPerToken, prompt.Passages.Count + 1, 0));
                }

                progress.WriteLine($"  {length,6} {name}: TTFT {median:F1} ms" + (rows[^1].FetchMs is { } ms ? $", fetch {ms:F1} ms" : ""));
                sessions[i].Dispose();
            }

            LastOthersShare = contention?.OthersShare();
            if (LastOthersShare is double others && others > 0.1)
            {
                progress.WriteLine($"  {length,6} note: other processes used {others:P0} of the CPU meanwhile; these timings are contended");
            }

            return rows;
        }
        finally
        {
            foreach (var (_, store, _) in sources)
            {
                (store as IDisposable)?.Dispose();
            }

            if (fileDirectory is null)
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }

    /// <summary>The bench's store table as markdown.</summary>
    public static string Markdown(int length, BenchOptions options, string machine, double? othersShare, ModelInfo info, IReadOnlyList<Row> rows)
    {
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"{options.ModelName} on {options.Device} ({info.DType}), {machine}; {length} tokens; medians of {options.Repeats} runs after {options.Warmup} warm-up; {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC; commit {Commit}.");
        if (othersShare is double others)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"Other processes used {others:P0} of the CPU during the run.");
        }

        text.AppendLine(CultureInfo.InvariantCulture, $"KV states: {info.KvBytesPerToken} bytes per token in memory ({info.DType}).");
        text.AppendLine();
        text.AppendLine("| passages from | TTFT ms | fetch ms, all passages | fetch GB/s | stored bytes/token | TTFT vs re-encoding |");
        text.AppendLine("|---|---:|---:|---:|---:|---:|");
        double reencoded = rows[^1].TtftMs;
        foreach (var row in rows)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {row.Source} | {row.TtftMs:F1} | {Format(row.FetchMs, "F1")} | {Format(row.FetchBytesPerSecond / 1e9, "F2")} | {Format(row.BytesPerToken, "F0")} | {reencoded / row.TtftMs:F2}x |");
        }

        return text.ToString();
    }

    /// <summary>The commit this build was made from, as the build stamped it, or <c>unknown</c>.</summary>
    public static string Commit { get; } =
        typeof(StoreBench).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion is { } version
        && version.IndexOf('+', StringComparison.Ordinal) is int plus and >= 0
            ? version[(plus + 1)..]
            : "unknown";

    public static string Json(int length, BenchOptions options, string machine, double? othersShare, ModelInfo info, IReadOnlyList<Row> rows) => JsonSerializer.Serialize(new
    {
        model = options.ModelName,
        device = options.Device,
        machine,
        commit = Commit,
        cpu_share_of_other_processes = othersShare,
        dtype = info.DType.ToString().ToLowerInvariant(),
        tokens = length,
        warmup = options.Warmup,
        repeats = options.Repeats,
        kv_bytes_per_token = info.KvBytesPerToken,
        date = DateTimeOffset.UtcNow,
        rows = rows.Select(r => new
        {
            source = r.Source,
            ttft_ms = r.TtftMs,
            fetch_ms = r.FetchMs,
            fetch_bytes_per_second = r.FetchBytesPerSecond,
            stored_bytes_per_token = r.BytesPerToken,
        }),
    }, new JsonSerializerOptions { WriteIndented = true });

    private static string Format(double? value, string format) => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "-";

    /// <summary>Median milliseconds to read every local block of the prompt from the store, device synchronised.</summary>
    private async Task<double> FetchAsync(string name, IKvBlockStore store, BenchPrompt prompt)
    {
        var fetchMs = new List<double>();
        for (int i = 0; i < options.Warmup + options.Repeats; i++)
        {
            _clock.Synchronize();
            long start = Stopwatch.GetTimestamp();
            foreach (int[] tokens in prompt.LocalBlocks)
            {
                var block = await store.TryGetAsync(BlockKey.For(model.Info.Fingerprint, tokens), tokens)
                    ?? throw new InvalidOperationException($"{name}: a stored passage was not found");
                block.Release();
            }

            _clock.Synchronize();
            if (i >= options.Warmup)
            {
                fetchMs.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }

        return Summary.Of(fetchMs).Median;
    }

    /// <summary>Serialized bytes per token of this prompt's blocks: payload plus header and checksum.</summary>
    private double SerializedBytesPerToken(BenchPrompt prompt)
    {
        long total = 0;
        foreach (int[] tokens in prompt.LocalBlocks)
        {
            // Header (fingerprint, shape, token ids) and checksum, beside the payload.
            total += KvBlockFormat.PreambleLength + 2 + Encoding.UTF8.GetByteCount(model.Info.Fingerprint) + 4 + 16 + 4L * tokens.Length
                + model.Info.KvBytesPerToken * tokens.Length + KvBlockFormat.ChecksumLength;
        }

        return (double)total / prompt.CachedTokens;
    }

    private static void Expect(GenerationResult result, int reused, string what)
    {
        if (result.ReusedBlocks != reused)
        {
            // A benchmark that silently measured something else is worse than none.
            throw new InvalidOperationException($"{what}: {result.ReusedBlocks} blocks reused, {result.EncodedBlocks} encoded; expected {reused} reused");
        }
    }
}
