namespace BlockAttention.Caching;

/// <summary>
/// Keeps encoded blocks for reuse across requests. Implementations must be safe for concurrent
/// use, must never return a block whose tokens differ from those asked for, and must never free a
/// block that a caller still holds a reference to (see <see cref="KvBlock"/>).
/// </summary>
public interface IKvBlockStore
{
    /// <summary>
    /// Looks up the block for <paramref name="key"/> whose tokens equal <paramref name="tokens"/>.
    /// On a hit, the returned block carries a reference acquired for the caller, who must
    /// <see cref="KvBlock.Release"/> it when done.
    /// </summary>
    ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default);

    /// <summary>
    /// Offers a block to the store. The store acquires its own reference if it keeps the block;
    /// the caller's reference is unaffected. Returns true when the store now holds the block's
    /// states (this block, or an equal one it already had), false when it kept nothing (for
    /// example, the block is larger than the store's limit); either way the caller goes on using
    /// its own reference.
    /// </summary>
    ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default);

    /// <summary>Removes the block for <paramref name="key"/>, if present. Returns true when one was removed.</summary>
    ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default);

    /// <summary>Counters since the store was created.</summary>
    KvBlockStoreStatistics Statistics { get; }
}
