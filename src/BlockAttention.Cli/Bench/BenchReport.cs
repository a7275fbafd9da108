using System.Text.Json;
using System.Text.Json.Serialization;

namespace BlockAttention.Cli.Bench;

// The JSON written by `blockattn bench` and read by benchmarks/BlockAttention.Reports, which links
// this file: one definition of the format for both. Plain data, no TorchSharp, so the report tool
// needs no libtorch. Times are milliseconds, sizes bytes.

/// <summary>One run of <c>blockattn bench</c>: where, what, and the figures per prompt length.</summary>
internal sealed record BenchReport
{
    public required MachineDescription Machine { get; init; }

    public required DateTimeOffset Date { get; init; }

    /// <summary>The preset name, or the checkpoint folder's name.</summary>
    public required string Model { get; init; }

    /// <summary>True when the weights are random (a preset), false for a checkpoint folder.</summary>
    public required bool RandomWeights { get; init; }

    public required string Device { get; init; }

    [JsonPropertyName("dtype")]
    public required string DType { get; init; }

    public required ModelDescription Shape { get; init; }

    public required PromptDescription Prompt { get; init; }

    public required int Warmup { get; init; }

    public required int Repeats { get; init; }

    public required int DecodeTokens { get; init; }

    /// <summary>How peak memory was measured, in words.</summary>
    public required string MemoryMethod { get; init; }

    public required IReadOnlyList<LengthResult> Lengths { get; init; }

    public SoakResult? Soak { get; init; }

    /// <summary>How cached passages reach the final block: "segment table" (read in place) or "assembly" (re-encoded into a request cache).</summary>
    public string? CachedBlocks { get; init; }

    /// <summary>Concurrent block requests over the same passages, with the device memory they took.</summary>
    public ConcurrentResult? Concurrent { get; init; }

    /// <summary>
    /// Many requests at once (<c>--concurrency</c>): per level, a batching session and one that runs
    /// one request at a time, under the same seeded Poisson arrivals.
    /// </summary>
    [JsonPropertyName("concurrency")]
    public IReadOnlyList<ConcurrencyResult>? ConcurrencyLevels { get; init; }

    /// <summary>The checks the run was asked for (<c>--expect-*</c>, <c>--baseline</c>, <c>--soak</c>) and their outcome.</summary>
    public IReadOnlyList<BenchCheck> Checks { get; init; } = [];

    /// <summary>Reads the checks of reports written before they were called checks (the key <c>targets</c>); never written.</summary>
    [JsonPropertyName("targets")]
    public IReadOnlyList<BenchCheck>? EarlierChecks
    {
        get => null;
        init
        {
            if (value is not null)
            {
                Checks = value;
            }
        }
    }

    /// <summary>Seconds the whole run took, model creation included.</summary>
    public required double TotalSeconds { get; init; }

    public static JsonSerializerOptions JsonOptions { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
}

internal sealed record MachineDescription
{
    /// <summary>A label given with <c>--machine</c>, else the GPU or CPU name.</summary>
    public required string Label { get; init; }

    public required string Cpu { get; init; }

    public required int Cores { get; init; }

    public required int TorchThreads { get; init; }

    public long? MemoryBytes { get; init; }

    public string? Gpu { get; init; }

    public long? GpuMemoryBytes { get; init; }

    public string? CudaDriver { get; init; }

    public required string Os { get; init; }

    public required string Runtime { get; init; }

    public required string TorchSharp { get; init; }

    /// <summary>
    /// The 1-minute load average at the start and at the end of the run (<c>/proc/loadavg</c>): on
    /// a shared machine, a load above the core count means the timings were taken under contention.
    /// </summary>
    public IReadOnlyList<double>? LoadAverage { get; init; }
}

internal sealed record ModelDescription
{
    public required int Layers { get; init; }

    public required int Hidden { get; init; }

    public required int Heads { get; init; }

    public required int KvHeads { get; init; }

    public required int HeadDim { get; init; }

    public required int Vocab { get; init; }

    public required long Parameters { get; init; }

    public required long WeightBytes { get; init; }

    public required long KvBytesPerToken { get; init; }

    public required string Fingerprint { get; init; }
}

/// <summary>The shape of the benchmark prompts: an instruction block, passages, a final block.</summary>
internal sealed record PromptDescription(int InstructionTokens, int PassageTokens, int FinalTokens);

/// <summary>Median, extremes and every sample of one measurement.</summary>
internal sealed record Summary(double Median, double Min, double Max, IReadOnlyList<double> Samples)
{
    public static Summary Of(IReadOnlyList<double> samples)
    {
        if (samples.Count == 0)
        {
            return new Summary(double.NaN, double.NaN, double.NaN, []);
        }

        var sorted = samples.Order().ToArray();
        int mid = sorted.Length / 2;
        double median = sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
        return new Summary(median, sorted[0], sorted[^1], [.. samples]);
    }
}

/// <summary>Every figure for one prompt length.</summary>
internal sealed record LengthResult
{
    public required int Tokens { get; init; }

    public required int Passages { get; init; }

    /// <summary>Tokens of the local blocks (instruction and passages): what the store holds.</summary>
    public required int CachedTokens { get; init; }

    /// <summary>Full attention, cold: the whole prompt through the model (session-reported TTFT).</summary>
    public required Summary FullTtft { get; init; }

    /// <summary>Full attention, wall clock around the call with device synchronisation.</summary>
    public required Summary FullWall { get; init; }

    /// <summary>Block mode, every local block already in the store.</summary>
    public required Summary BlockTtft { get; init; }

    public required Summary BlockWall { get; init; }

    /// <summary>Block mode with an empty store: every local block encoded, then assembly and the final block.</summary>
    public required Summary ColdTtft { get; init; }

    public required Summary ColdWall { get; init; }

    /// <summary>Re-encoding (rotating cached keys to their offsets) and assembly into a fresh cache, alone.</summary>
    public required Summary Reencode { get; init; }

    /// <summary>
    /// The same re-encoding and assembly into a cache allocated once and reused: the arithmetic and
    /// copies without the first touch of new memory, which a fresh cache pays (on a VM, dearly).
    /// </summary>
    public Summary? ReencodeReusedCache { get; init; }

    /// <summary>The final block's forward pass over the assembled cache, alone (no sampling).</summary>
    public required Summary FinalForward { get; init; }

    /// <summary>Decode speed after a block prefill, tokens per second (session-reported).</summary>
    public required Summary DecodeTokensPerSecond { get; init; }

    /// <summary>KV cache bytes of the prompt: tokens times the model's KV bytes per token.</summary>
    public required long KvBytes { get; init; }

    /// <summary>Peak resident set of the process while this length ran (VmHWM, reset per length).</summary>
    public long? PeakRssBytes { get; init; }

    /// <summary>Device memory in use after this length ran, as the CUDA driver sees it (see <see cref="BenchReport.MemoryMethod"/>).</summary>
    public long? GpuUsedBytes { get; init; }

    /// <summary>Share of all cores that other processes used while this length ran (0 to 1); high means contended timings.</summary>
    public double? OtherCpuShare { get; init; }

    /// <summary>Full TTFT over block TTFT (medians, session-reported).</summary>
    public double Speedup => FullTtft.Median / BlockTtft.Median;

    /// <summary>Re-encoding and assembly as a fraction of block TTFT (medians).</summary>
    /// <summary>
    /// Re-encoding + assembly as a request pays it: into a reused cache, since BlockSession keeps
    /// request caches between requests (the fresh-cache figure adds the first touch of new memory).
    /// </summary>
    public Summary SessionReencode => ReencodeReusedCache ?? Reencode;

    public double ReencodeShare => SessionReencode.Median / BlockTtft.Median;
}

/// <summary>Memory over many consecutive block requests (same passages, new questions).</summary>
internal sealed record SoakResult
{
    public required int Requests { get; init; }

    public required int WarmupRequests { get; init; }

    public required int Tokens { get; init; }

    public required long RssStartBytes { get; init; }

    public required long RssAfterWarmupBytes { get; init; }

    public required long RssEndBytes { get; init; }

    public long? GpuStartBytes { get; init; }

    public long? GpuAfterWarmupBytes { get; init; }

    public long? GpuEndBytes { get; init; }

    /// <summary>Resident set sampled every tenth of the run: shows a slope that three points might hide.</summary>
    public required IReadOnlyList<long> RssSamples { get; init; }

    public required Summary BlockTtft { get; init; }

    public long RssGrowthBytes => RssEndBytes - RssAfterWarmupBytes;

    public long? GpuGrowthBytes => GpuEndBytes - GpuAfterWarmupBytes;
}

/// <summary>One check of a run: what was expected, whether the run met it, and the figures that decided.</summary>
internal sealed record BenchCheck(string Name, bool Passed, string Detail);

/// <summary>Requests run at the same time over the same passages (new questions), each decoding a few tokens.</summary>
internal sealed record ConcurrentResult
{
    public required int Requests { get; init; }

    public required int Tokens { get; init; }

    /// <summary>Bytes of KV the passages take once.</summary>
    public required long PassageKvBytes { get; init; }

    public long? GpuBeforeBytes { get; init; }

    public long? GpuAfterBytes { get; init; }

    public required double WallMs { get; init; }
}

/// <summary>
/// One concurrency level: the batching session's figures, and the same load on a session that runs
/// one request at a time (<see cref="Serial"/>, which has no level or ratio of its own).
/// </summary>
internal sealed record ConcurrencyResult
{
    /// <summary>The most requests the client keeps in flight (none on <see cref="Serial"/>).</summary>
    public int? Concurrency { get; init; }

    public int? Requests { get; init; }

    /// <summary>Output tokens of all requests over the time from the first send to the last token.</summary>
    public required double OutputTokensPerSecond { get; init; }

    [JsonPropertyName("ttft_p50_ms")]
    public required double TtftP50Ms { get; init; }

    [JsonPropertyName("ttft_p95_ms")]
    public required double TtftP95Ms { get; init; }

    /// <summary>Time per output token after the first, per request.</summary>
    [JsonPropertyName("tpot_p50_ms")]
    public required double TpotP50Ms { get; init; }

    [JsonPropertyName("tpot_p95_ms")]
    public required double TpotP95Ms { get; init; }

    public required long OutputTokens { get; init; }

    public required double WallMs { get; init; }

    /// <summary>The same arrivals on a session that runs one request at a time.</summary>
    public ConcurrencyResult? Serial { get; init; }

    /// <summary>Output throughput batched / one at a time.</summary>
    public double? ThroughputRatio { get; init; }

    /// <summary>With <c>--check-exact</c>: requests whose batched tokens equal their tokens run alone on the batching session.</summary>
    public int? ExactIdentical { get; init; }

    /// <summary>With <c>--check-exact</c>: requests checked (all of the level's).</summary>
    public int? ExactChecked { get; init; }

    /// <summary>With <c>--check-exact</c>: requests whose tokens on the one-at-a-time session equal their tokens alone on the batching session (for information: that session takes the plain forward pass).</summary>
    public int? SerialIdentical { get; init; }

    /// <summary>With <c>--check-exact</c>: the first difference found, if any.</summary>
    public string? ExactDetail { get; init; }
}
