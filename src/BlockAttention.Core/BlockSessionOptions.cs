using System.Diagnostics.Metrics;
using Microsoft.Extensions.Logging;

namespace BlockAttention;

/// <summary>Options of a <see cref="BlockSession"/>.</summary>
public sealed record BlockSessionOptions
{
    /// <summary>Request KV caches kept for reuse between requests (their memory stays allocated while idle). Default 2.</summary>
    public int IdleCaches { get; init; } = 2;

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
