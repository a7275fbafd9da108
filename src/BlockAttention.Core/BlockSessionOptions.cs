using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace BlockAttention;

/// <summary>Options of a <see cref="BlockSession"/>.</summary>
public sealed record BlockSessionOptions
{
    /// <summary>Request KV caches kept for reuse between requests (their memory stays allocated while idle). Default 2.</summary>
    public int IdleCaches { get; init; } = 2;

    /// <summary>
    /// The most requests the session runs at once; later requests wait, first come first served.
    /// Above 1, their decode steps and the chunks of their final blocks share one forward pass of the
    /// model (one that implements <see cref="Models.IBatchForward"/>), and a request's tokens never
    /// depend on what runs beside it: it gets exactly the tokens it gets alone in this session.
    /// 1 runs one request at a time, each step through the model's plain forward pass. Batched
    /// matrix products and attention are computed so that no row depends on the others (on an x86
    /// CPU in float32, fixed-order dot products that read each weight once per step, so that a
    /// request alone costs about what the plain pass costs; elsewhere whole GEMM tiles), and differ
    /// from the plain pass in the last bits of the logits (so, at an exact near-tie of two tokens,
    /// in a greedy choice). Default 16.
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
    /// On the CPU, how many threads libtorch uses for the session's forward passes of decode steps
    /// and final-block chunks (the session's step worker only; other threads keep theirs). Null
    /// (the default) keeps libtorch's setting. 1 suits a small or busy machine: a step's products
    /// have few rows, and each of a step's thousands of parallel regions waits for its slowest
    /// thread (on a shared 2-core machine under load, 8-row products ran 7 to 10 times faster on
    /// one thread than on two). Ignored on CUDA.
    /// </summary>
    public int? StepThreads { get; init; }

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
