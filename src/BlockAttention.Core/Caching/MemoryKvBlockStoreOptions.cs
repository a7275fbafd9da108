namespace BlockAttention.Caching;

/// <summary>Options for <see cref="MemoryKvBlockStore"/>.</summary>
public sealed class MemoryKvBlockStoreOptions
{
    /// <summary>
    /// The most tensor memory the store keeps, in bytes: the sum of its blocks'
    /// <see cref="KvBlock.SizeInBytes"/>. Required; must be greater than zero.
    /// </summary>
    public required long MaxBytes { get; init; }

    /// <summary>
    /// When a new block does not fit, the fraction of <see cref="MaxBytes"/> to free beyond the
    /// room the block needs, in <c>[0, 1)</c>. The default, 0, evicts only as many least recently
    /// used blocks as the new one needs; a larger value evicts more at once, so that the next few
    /// additions find room without compacting.
    /// </summary>
    public double CompactionPercentage { get; init; }

    /// <summary>
    /// Evicts a block that was not read or offered for this long; null (the default) keeps blocks
    /// until capacity evicts them.
    /// </summary>
    public TimeSpan? SlidingExpiration { get; init; }

    /// <summary>
    /// The least time between two scans for expired blocks (default one minute). Scans run in the
    /// background, started by store operations; they matter only with <see cref="SlidingExpiration"/>.
    /// </summary>
    public TimeSpan ExpirationScanFrequency { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// The clock for last-access times and expiration (default <see cref="TimeProvider.System"/>);
    /// tests pass a manual one.
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}
