using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace BlockAttention;

/// <summary>Options of a <see cref="BlockSession"/>.</summary>
public sealed record BlockSessionOptions
{
    /// <summary>Request KV caches kept for reuse between requests (their memory stays allocated while idle). Default 2.</summary>
    public int IdleCaches { get; init; } = 2;

    /// <summary>
    /// The most requests the session runs at once; their decode steps, and the chunks of their
    /// final blocks, share one forward pass of the model, and each request still gets exactly the
    /// tokens it would get alone. Later requests wait, first come first served. 1 runs one request
    /// at a time. Default 16: on a 2-core CPU with SmolLM2-135M, throughput grows little beyond
    /// that while each request's time per token keeps growing.
    /// </summary>
    public int MaxBatchSize { get; init; } = 16;

    /// <summary>
    /// The most requests that wait for one of the <see cref="MaxBatchSize"/> places; one more fails
    /// at once with <see cref="SessionBusyException"/>. Default 256.
    /// </summary>
    public int MaxQueuedRequests { get; init; } = 256;

    /// <summary>
    /// The most final-block tokens one forward pass computes: a longer final block joins the batch
    /// in chunks, so that it never stalls decoding requests for long. Default 128.
    /// </summary>
    public int PrefillChunkTokens { get; init; } = 128;

    /// <summary>
    /// The most bytes of request KV caches (in use and kept idle) the session allocates; a request
    /// that does not fit waits for earlier ones to finish, and one that could never fit fails with
    /// <see cref="ArgumentException"/>. Null (the default): no bound. Cached blocks are the store's
    /// (see <see cref="Caching.MemoryKvBlockStoreOptions.MaxBytes"/>).
    /// </summary>
    public long? MaxCacheBytes { get; init; }

    /// <summary>
    /// Where the session logs: store decisions at Debug, store failures at Warning, failed requests at
    /// Error; nothing per token. Null: no logging.
    /// </summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// Creates the session's <c>BlockAttention</c> meter (dependency injection's factory, so that
    /// metrics are scoped to the container). Null: the session creates its own meter.
    /// </summary>
    public IMeterFactory? MeterFactory { get; init; }
}
