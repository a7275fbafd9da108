namespace BlockAttention.Caching;

/// <summary>What a <see cref="TieredKvBlockStore"/> did, since it was created.</summary>
/// <param name="MemoryHits">Lookups answered by the memory tier.</param>
/// <param name="SlowHits">Lookups answered by the slow tier (the block was then promoted to memory).</param>
/// <param name="Misses">Lookups neither tier answered (the block is encoded).</param>
/// <param name="SkippedAsSlowerThanEncoding">Lookups that did not ask the slow tier because fetching would have taken longer than encoding (the block is encoded).</param>
/// <param name="SlowTierFailures">Slow-tier lookups or writes that failed (counted as misses or dropped writes).</param>
/// <param name="WritesBehind">Blocks written to the slow tier in the background.</param>
/// <param name="WritesDropped">Blocks not written to the slow tier: the queue was full, or the slow tier declined or failed.</param>
/// <param name="PendingWrites">Blocks waiting to be written now.</param>
/// <param name="FetchBytesPerSecond">Measured slow-tier fetch bandwidth (moving average), 0 until measured.</param>
/// <param name="EncodeSecondsPerToken">Measured encode time per token (moving average), 0 until measured.</param>
public readonly record struct TieredKvBlockStoreStatistics(
    long MemoryHits,
    long SlowHits,
    long Misses,
    long SkippedAsSlowerThanEncoding,
    long SlowTierFailures,
    long WritesBehind,
    long WritesDropped,
    long PendingWrites,
    double FetchBytesPerSecond,
    double EncodeSecondsPerToken);
