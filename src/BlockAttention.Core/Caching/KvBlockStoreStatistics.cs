namespace BlockAttention.Caching;

/// <summary>A snapshot of a block store's counters.</summary>
/// <param name="Hits">Lookups that returned a block.</param>
/// <param name="Misses">Lookups that found nothing usable (including a hash collision or a freed block).</param>
/// <param name="Sets">Blocks the store accepted.</param>
/// <param name="Rejected">Blocks the store declined (for example, larger than its limit).</param>
/// <param name="Evictions">Blocks removed to make room, or because they expired.</param>
/// <param name="Entries">Blocks held now.</param>
/// <param name="Bytes">Bytes of tensor memory held now (the sum of the blocks' <see cref="KvBlock.SizeInBytes"/>).</param>
public readonly record struct KvBlockStoreStatistics(long Hits, long Misses, long Sets, long Rejected, long Evictions, long Entries, long Bytes);
