using Microsoft.Extensions.Logging;

namespace BlockAttention.Caching;

/// <summary>Options for <see cref="TieredKvBlockStore"/>.</summary>
public sealed class TieredKvBlockStoreOptions
{
    /// <summary>
    /// How long <see cref="TieredKvBlockStore.DisposeAsync"/> waits for pending writes to finish
    /// (default 30 s); past it, the rest are abandoned and a warning says how many.
    /// </summary>
    public TimeSpan DisposeTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The most blocks waiting for or being written to the slow tier (default 64). When the queue is full,
    /// a new block is kept in memory only and counted in <see cref="TieredKvBlockStoreStatistics.WritesDropped"/>:
    /// requests never wait for the slow tier.
    /// </summary>
    public int MaxPendingWrites { get; init; } = 64;

    /// <summary>
    /// Skip the slow tier for a block when its measured fetch time would exceed its measured encode
    /// time (default true). Until both were measured, the slow tier is always tried.
    /// </summary>
    public bool CostAware { get; init; } = true;

    /// <summary>
    /// While the slow tier is being skipped as too slow, one lookup in this many still fetches from
    /// it, so that a faster slow tier is noticed (default 16).
    /// </summary>
    public int ProbeInterval { get; init; } = 16;

    /// <summary>Where slow-tier failures are reported (default: nowhere).</summary>
    public ILoggerFactory? LoggerFactory { get; init; }
}
