namespace BlockAttention.Diagnostics;

/// <summary>
/// The names under which BlockAttention reports metrics (a <see cref="System.Diagnostics.Metrics.Meter"/>)
/// and traces (an <see cref="System.Diagnostics.ActivitySource"/>), for OpenTelemetry's
/// <c>AddMeter</c> and <c>AddSource</c>, or a <c>MetricCollector</c> in tests.
/// </summary>
/// <remarks>
/// Per-request measurements carry the tag <see cref="ModeTag"/> (<c>block</c>, <c>full</c> or
/// <c>block_one_pass</c>). Store measurements are observed from the session's store when a
/// listener collects them.
/// </remarks>
public static class BlockAttentionDiagnostics
{
    /// <summary>The meter's name and the activity source's name: <c>BlockAttention</c>.</summary>
    public const string Name = "BlockAttention";

    /// <summary>The tag with the attention mode of a request.</summary>
    public const string ModeTag = "blockattention.mode";

    /// <summary>Histogram, seconds: from a request's start until its first token was chosen.</summary>
    public const string TimeToFirstToken = "blockattention.time_to_first_token";

    /// <summary>Counter, tokens: prompt tokens of requests.</summary>
    public const string PromptTokens = "blockattention.prompt_tokens";

    /// <summary>Counter, tokens: prompt tokens that went through the model (the rest came from the store).</summary>
    public const string ComputedPromptTokens = "blockattention.computed_prompt_tokens";

    /// <summary>Counter, tokens: generated tokens.</summary>
    public const string GeneratedTokens = "blockattention.generated_tokens";

    /// <summary>Counter, blocks: local blocks whose states came from the store.</summary>
    public const string BlocksReused = "blockattention.blocks.reused";

    /// <summary>Counter, blocks: local blocks encoded by the model (for a request or by precomputation).</summary>
    public const string BlocksEncoded = "blockattention.blocks.encoded";

    /// <summary>Histogram, tokens per second: decode speed after the first token, per request of two tokens or more.</summary>
    public const string DecodeTokensPerSecond = "blockattention.decode.tokens_per_second";

    /// <summary>Histogram, requests: how many requests' steps (decode steps and final-block chunks) one forward pass computed.</summary>
    public const string BatchSize = "blockattention.batch.size";

    /// <summary>Observable gauge, requests: requests running now (at most <see cref="BlockSessionOptions.MaxBatchSize"/>).</summary>
    public const string ActiveRequests = "blockattention.requests.active";

    /// <summary>Observable gauge, requests: requests waiting for a place among the running ones (the queue length).</summary>
    public const string QueuedRequests = "blockattention.requests.queued";

    /// <summary>Observable gauge, bytes: memory of the request KV caches in use.</summary>
    public const string CacheBytes = "blockattention.cache.bytes";

    /// <summary>Observable counter: store lookups that returned a block.</summary>
    public const string StoreHits = "blockattention.store.hits";

    /// <summary>Observable counter: store lookups that found nothing usable.</summary>
    public const string StoreMisses = "blockattention.store.misses";

    /// <summary>Observable counter: blocks the store removed to make room or because they expired.</summary>
    public const string StoreEvictions = "blockattention.store.evictions";

    /// <summary>Observable gauge, bytes: tensor memory the store holds now.</summary>
    public const string StoreBytes = "blockattention.store.bytes";

    /// <summary>Observable gauge: blocks the store holds now.</summary>
    public const string StoreEntries = "blockattention.store.entries";

    /// <summary>Span around one request (generate or stream).</summary>
    public const string GenerateActivity = "blockattention.generate";

    /// <summary>Span: tokenizing the prompt's blocks.</summary>
    public const string TokenizeActivity = "blockattention.tokenize";

    /// <summary>Span: one store lookup.</summary>
    public const string LookupActivity = "blockattention.lookup";

    /// <summary>Span: encoding one local block.</summary>
    public const string EncodeActivity = "blockattention.encode";

    /// <summary>Span: placing the local blocks' states at their offsets in the request's cache.</summary>
    public const string AssembleActivity = "blockattention.assemble";

    /// <summary>Span: the forward pass of the final block (or of the whole prompt in full and one-pass modes).</summary>
    public const string FinalBlockActivity = "blockattention.final_block";

    /// <summary>Span: decoding, from the first token to the last.</summary>
    public const string DecodeActivity = "blockattention.decode";

    /// <summary>Span: a precomputation of blocks (<see cref="BlockSession.PrecomputeAsync(IEnumerable{Prompts.PromptBlock}, CancellationToken)"/>).</summary>
    public const string PrecomputeActivity = "blockattention.precompute";
}
