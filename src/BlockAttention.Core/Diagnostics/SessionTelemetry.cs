using System.Diagnostics;
using System.Diagnostics.Metrics;
using BlockAttention.Caching;
using BlockAttention.Generation;

namespace BlockAttention.Diagnostics;

/// <summary>The instruments of one session, and the spans it starts.</summary>
internal sealed class SessionTelemetry : IDisposable
{
    private static readonly ActivitySource s_source = new(BlockAttentionDiagnostics.Name, typeof(SessionTelemetry).Assembly.GetName().Version?.ToString());

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Counter<long> _promptTokens;
    private readonly Counter<long> _computedPromptTokens;
    private readonly Counter<long> _generatedTokens;
    private readonly Counter<long> _blocksReused;
    private readonly Counter<long> _blocksEncoded;
    private readonly Histogram<double> _decodeSpeed;
    private readonly Histogram<int> _batchSize;

    public SessionTelemetry(IMeterFactory? meterFactory, IKvBlockStore? store, SessionLoad? load = null)
    {
        // From a factory (dependency injection) the factory owns the meter; otherwise the session does.
        _ownsMeter = meterFactory is null;
        _meter = meterFactory?.Create(new MeterOptions(BlockAttentionDiagnostics.Name)) ?? new Meter(BlockAttentionDiagnostics.Name);
        _timeToFirstToken = _meter.CreateHistogram<double>(BlockAttentionDiagnostics.TimeToFirstToken, "s", "Time from a request's start to its first token",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
        _promptTokens = _meter.CreateCounter<long>(BlockAttentionDiagnostics.PromptTokens, "{token}", "Prompt tokens of requests");
        _computedPromptTokens = _meter.CreateCounter<long>(BlockAttentionDiagnostics.ComputedPromptTokens, "{token}", "Prompt tokens computed by the model");
        _generatedTokens = _meter.CreateCounter<long>(BlockAttentionDiagnostics.GeneratedTokens, "{token}", "Generated tokens");
        _blocksReused = _meter.CreateCounter<long>(BlockAttentionDiagnostics.BlocksReused, "{block}", "Local blocks taken from the store");
        _blocksEncoded = _meter.CreateCounter<long>(BlockAttentionDiagnostics.BlocksEncoded, "{block}", "Local blocks encoded by the model");
        _decodeSpeed = _meter.CreateHistogram<double>(BlockAttentionDiagnostics.DecodeTokensPerSecond, "{token}/s", "Decode speed after the first token");
        _batchSize = _meter.CreateHistogram<int>(BlockAttentionDiagnostics.BatchSize, "{request}", "Requests whose steps one forward pass computed",
            advice: new InstrumentAdvice<int> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128] });
        if (load is not null)
        {
            _meter.CreateObservableGauge(BlockAttentionDiagnostics.ActiveRequests, load.Active, "{request}", "Requests running now (at most MaxBatchSize)");
            _meter.CreateObservableGauge(BlockAttentionDiagnostics.QueuedRequests, load.Queued, "{request}", "Requests waiting for a place among the running ones");
            _meter.CreateObservableGauge(BlockAttentionDiagnostics.CacheBytes, load.CacheBytes, "By", "Memory of the request KV caches in use");
        }

        if (store is not null)
        {
            _meter.CreateObservableCounter(BlockAttentionDiagnostics.StoreHits, () => store.Statistics.Hits, "{lookup}", "Store lookups that returned a block");
            _meter.CreateObservableCounter(BlockAttentionDiagnostics.StoreMisses, () => store.Statistics.Misses, "{lookup}", "Store lookups that found nothing usable");
            _meter.CreateObservableCounter(BlockAttentionDiagnostics.StoreEvictions, () => store.Statistics.Evictions, "{block}", "Blocks evicted from the store");
            _meter.CreateObservableGauge(BlockAttentionDiagnostics.StoreBytes, () => store.Statistics.Bytes, "By", "Tensor memory held by the store");
            _meter.CreateObservableGauge(BlockAttentionDiagnostics.StoreEntries, () => store.Statistics.Entries, "{block}", "Blocks held by the store");
        }
    }

    public static string ModeName(AttentionMode mode) => mode switch
    {
        AttentionMode.Block => "block",
        AttentionMode.Full => "full",
        AttentionMode.BlockOnePass => "block_one_pass",
        _ => mode.ToString(),
    };

    /// <summary>
    /// Starts a span under <paramref name="parent"/> without making it the ambient one: requests are
    /// async iterators that yield to their caller, and the caller's own spans must not end up under ours.
    /// </summary>
    public static Activity? StartSpan(string name, Activity? parent = null)
    {
        var previous = Activity.Current;
        var activity = parent is null
            ? s_source.StartActivity(name, ActivityKind.Internal)
            : s_source.StartActivity(name, ActivityKind.Internal, parent.Context);
        Activity.Current = previous;
        return activity;
    }

    public void RecordRequest(GenerationResult result)
    {
        var mode = new KeyValuePair<string, object?>(BlockAttentionDiagnostics.ModeTag, ModeName(result.Mode));
        _timeToFirstToken.Record(result.TimeToFirstToken.TotalSeconds, mode);
        _promptTokens.Add(result.PromptTokens, mode);
        _computedPromptTokens.Add(result.ComputedPromptTokens, mode);
        _generatedTokens.Add(result.TokenIds.Count, mode);
        if (result.ReusedBlocks > 0)
        {
            _blocksReused.Add(result.ReusedBlocks, mode);
        }

        if (result.EncodedBlocks > 0)
        {
            _blocksEncoded.Add(result.EncodedBlocks, mode);
        }

        if (result.TokenIds.Count > 1 && result.TokensPerSecond > 0)
        {
            _decodeSpeed.Record(result.TokensPerSecond, mode);
        }
    }

    /// <summary>One batched forward pass of <paramref name="requests"/> requests' steps.</summary>
    public void RecordBatch(int requests) => _batchSize.Record(requests);

    /// <summary>Blocks encoded by a precomputation (blocks it found stored are not counted as reused: no request used them).</summary>
    public void RecordPrecomputed(int encoded)
    {
        var mode = new KeyValuePair<string, object?>(BlockAttentionDiagnostics.ModeTag, ModeName(AttentionMode.Block));
        if (encoded > 0)
        {
            _blocksEncoded.Add(encoded, mode);
        }
    }

    public void Dispose()
    {
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }
}

/// <summary>How a session's load is observed: requests running, requests waiting, request cache bytes.</summary>
internal sealed record SessionLoad(Func<int> Active, Func<int> Queued, Func<long> CacheBytes);
