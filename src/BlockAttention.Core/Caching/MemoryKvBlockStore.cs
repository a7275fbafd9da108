using System.Collections.Concurrent;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Internal;

namespace BlockAttention.Caching;

/// <summary>
/// An in-process <see cref="IKvBlockStore"/> over <see cref="MemoryCache"/>, bounded by the bytes
/// of tensor memory its blocks hold; when a new block does not fit, the least recently used blocks
/// leave first.
/// </summary>
/// <remarks>
/// <para>
/// The store holds its own reference on every block it keeps and releases it when the block
/// leaves (eviction, removal, replacement, expiry, <see cref="Clear"/>, <see cref="Dispose"/>), so
/// a block's tensors are freed only once the store and every reader are done with it.
/// </para>
/// <para>
/// <see cref="MemoryCache"/> drops an addition that would exceed its size limit and compacts only
/// later, on a background thread. The store therefore makes room itself before each addition,
/// synchronously: it compacts the cache (least recently used first) until the new block fits, so
/// the newest block is kept and the cache never refuses it. Additions are serialized; lookups
/// take no lock.
/// </para>
/// <para>
/// Accounting (<see cref="KvBlockStoreStatistics.Bytes"/>, <see cref="KvBlockStoreStatistics.Entries"/>)
/// happens only under the store's own write lock, whichever path releases a block: the store's
/// code (<see cref="SetAsync"/>, <see cref="RemoveAsync"/>, <see cref="Clear"/>,
/// <see cref="Dispose"/>) or <see cref="MemoryCache"/>'s eviction callbacks, which run later on the
/// thread pool and take the same lock. So when one of those methods returns, the blocks it evicted
/// or removed are already released and no longer counted, even when a callback claimed one of
/// them first: the method waited for that callback's accounting. The one exception is
/// <see cref="MemoryKvBlockStoreOptions.SlidingExpiration"/>: an expired block is released by its
/// eviction callback (or by the next addition that needs room, whichever comes first), so the
/// counters may lag an expiry by that callback's latency.
/// </para>
/// </remarks>
public sealed class MemoryKvBlockStore : IKvBlockStore, IDisposable
{
    private static readonly PostEvictionDelegate s_onEvicted =
        static (_, value, reason, state) => ((MemoryKvBlockStore)state!).OnEvicted((Entry)value!, reason);

    private readonly MemoryCache _cache;
    private readonly long _maxBytes;
    private readonly long _compactionBytes;
    private readonly TimeSpan? _slidingExpiration;

    // The blocks the store holds a reference on, which is what Bytes and Entries count. It can hold
    // a block the cache has already dropped (expired, callback pending), never the other way round.
    private readonly ConcurrentDictionary<BlockKey, Entry> _held = new();

    // Serializes additions and removals, so that "make room, then add" is atomic and the cache's
    // keys change only under it (apart from expiry).
    private readonly Lock _writeLock = new();
    private long _largestBlock;
    private volatile bool _disposed;

    /// <summary>
    /// Test seam: runs inside an eviction callback right after it has claimed an entry and before it
    /// subtracts the entry's bytes, so a test can hold a callback in that window and show that the
    /// store's own methods wait for it.
    /// </summary>
    internal Action? AfterCallbackClaimedEntry { get; set; }

    private long _hits;
    private long _misses;
    private long _sets;
    private long _rejected;
    private long _evictions;
    private long _entries;
    private long _bytes;

    /// <summary>Creates an empty store with the limits in <paramref name="options"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of its range.</exception>
    public MemoryKvBlockStore(MemoryKvBlockStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(options.CompactionPercentage);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(options.CompactionPercentage, 1.0);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.ExpirationScanFrequency, TimeSpan.Zero);
        if (options.SlidingExpiration is { } sliding)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(sliding, TimeSpan.Zero, nameof(options.SlidingExpiration));
        }

        ArgumentNullException.ThrowIfNull(options.TimeProvider);

        _maxBytes = options.MaxBytes;
        _compactionBytes = (long)(options.MaxBytes * options.CompactionPercentage);
        _slidingExpiration = options.SlidingExpiration;
        _cache = new MemoryCache(new MemoryCacheOptions
        {
            // A safety net only: the store makes room before each addition, so the cache's own
            // (background) overcapacity compaction never has to run.
            SizeLimit = options.MaxBytes,
            ExpirationScanFrequency = options.ExpirationScanFrequency,
            Clock = new TimeProviderClock(options.TimeProvider),
        });
    }

    /// <summary>The most bytes of tensor memory the store keeps.</summary>
    public long MaxBytes => _maxBytes;

    /// <inheritdoc />
    public KvBlockStoreStatistics Statistics => new(
        Interlocked.Read(ref _hits),
        Interlocked.Read(ref _misses),
        Interlocked.Read(ref _sets),
        Interlocked.Read(ref _rejected),
        Interlocked.Read(ref _evictions),
        Interlocked.Read(ref _entries),
        Interlocked.Read(ref _bytes));

    /// <inheritdoc />
    /// <remarks>A hit counts as a use of the block: it becomes the most recently used.</remarks>
    /// <exception cref="ObjectDisposedException">The store was disposed.</exception>
    public ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);

        // Equal tokens guard against a hash collision; TryAcquire against a block that left the
        // store and was freed between the lookup and now.
        if (_cache.TryGetValue(key, out object? value) && value is Entry entry
            && entry.Block.Encodes(tokens.Span) && entry.Block.TryAcquire())
        {
            Interlocked.Increment(ref _hits);
            return ValueTask.FromResult<KvBlock?>(entry.Block);
        }

        Interlocked.Increment(ref _misses);
        return ValueTask.FromResult<KvBlock?>(null);
    }

    /// <inheritdoc />
    /// <remarks>
    /// <para>
    /// Evicts least recently used blocks, synchronously, until <paramref name="block"/> fits.
    /// Returns false, counted in <see cref="KvBlockStoreStatistics.Rejected"/>, only when the
    /// block is larger than <see cref="MaxBytes"/> or the cache refused it anyway; the caller then
    /// just goes on using its own reference.
    /// </para>
    /// <para>
    /// If the store already holds a block with the same key and tokens (two requests encoded the
    /// same passage at once), it keeps that one, marks it used, and returns true without counting a
    /// set. A block under the same key with other tokens (a hash collision) is replaced.
    /// </para>
    /// </remarks>
    /// <exception cref="ArgumentException"><paramref name="block"/> was already freed.</exception>
    /// <exception cref="ObjectDisposedException">The store was disposed.</exception>
    public ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(block);
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(_disposed, this);
        return ValueTask.FromResult(Set(block));
    }

    /// <inheritdoc />
    /// <remarks>A removal is not counted as an eviction.</remarks>
    /// <exception cref="ObjectDisposedException">The store was disposed.</exception>
    public ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        lock (_writeLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_held.TryGetValue(key, out Entry? entry))
            {
                return ValueTask.FromResult(false);
            }

            _cache.Remove(key);
            return ValueTask.FromResult(Release(entry, eviction: false));
        }
    }

    /// <summary>Removes every block (not counted as evictions); readers keep the blocks they hold.</summary>
    /// <exception cref="ObjectDisposedException">The store was disposed.</exception>
    public void Clear()
    {
        lock (_writeLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ClearCore();
        }
    }

    /// <summary>
    /// Removes every block and releases the store's references; a block's tensors are freed now,
    /// or when the last reader releases it. Counters stay readable.
    /// </summary>
    public void Dispose()
    {
        lock (_writeLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            ClearCore();
            _cache.Dispose();
        }
    }

    private bool Set(KvBlock block)
    {
        if (block.SizeInBytes > _maxBytes)
        {
            Interlocked.Increment(ref _rejected);
            return false;
        }

        lock (_writeLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_cache.TryGetValue(block.Key, out object? value) && value is Entry current)
            {
                if (current.Block.Encodes(block.Tokens))
                {
                    return true; // the lookup above marked it used
                }

                _cache.Remove(block.Key);
                Release(current, eviction: false);
            }
            else if (_held.TryGetValue(block.Key, out Entry? expired))
            {
                // The cache dropped it (expired) and its callback has not run yet.
                Release(expired, eviction: true);
            }

            if (!block.TryAcquire())
            {
                throw new ArgumentException($"block {block.Key} was already freed", nameof(block));
            }

            MakeRoom(block.SizeInBytes);
            return Add(block);
        }
    }

    /// <summary>Adds a block the store has acquired and made room for. Called under the write lock.</summary>
    private bool Add(KvBlock block)
    {
        // Counted before the cache sees it: its eviction callback may run on another thread
        // before this method returns, and must find the entry's bytes there to subtract.
        var entry = new Entry(block);
        _held[block.Key] = entry;
        Interlocked.Add(ref _bytes, block.SizeInBytes);
        Interlocked.Increment(ref _entries);

        using (ICacheEntry cacheEntry = _cache.CreateEntry(block.Key))
        {
            cacheEntry.Value = entry;
            cacheEntry.Size = block.SizeInBytes;
            cacheEntry.SlidingExpiration = _slidingExpiration;
            cacheEntry.RegisterPostEvictionCallback(s_onEvicted, this);
        }

        // The cache reports a refused addition only through the entry's callback, later; look.
        if (_cache.TryGetValue(block.Key, out object? kept) && ReferenceEquals(kept, entry) && entry.TryMarkHeld())
        {
            _largestBlock = Math.Max(_largestBlock, block.SizeInBytes);
            Interlocked.Increment(ref _sets);
            return true;
        }

        Release(entry, eviction: false);
        Interlocked.Increment(ref _rejected);
        return false;
    }

    /// <summary>
    /// Evicts least recently used blocks until <paramref name="needed"/> more bytes fit (and
    /// <see cref="MemoryKvBlockStoreOptions.CompactionPercentage"/> more when it must evict at all).
    /// Called under the write lock.
    /// </summary>
    private void MakeRoom(long needed)
    {
        if (Interlocked.Read(ref _bytes) + needed <= _maxBytes)
        {
            return;
        }

        long target = Math.Max(0, _maxBytes - needed - _compactionBytes);
        ReleaseDropped(); // blocks that already expired free room without evicting anything
        while (Interlocked.Read(ref _bytes) > target)
        {
            int count = _cache.Count;
            if (count == 0)
            {
                break;
            }

            // Compact(fraction) removes a count of entries, least recently used first. No held
            // block is larger than _largestBlock, so this many never free more than needed, and
            // the loop ends with at most one block's worth of slack.
            long excess = Interlocked.Read(ref _bytes) - target;
            long batch = Math.Clamp(excess / Math.Max(1, _largestBlock), 1, count);
            _cache.Compact((batch + 0.5) / count);
            ReleaseDropped();
            if (_cache.Count >= count)
            {
                break; // nothing left the cache would evict; let the addition decide
            }
        }
    }

    /// <summary>
    /// Releases every held block the cache no longer has: the ones a compaction just evicted, or
    /// that expired. Called under the write lock, where only expiry can change the cache's keys.
    /// </summary>
    private void ReleaseDropped()
    {
        var present = new HashSet<object>(_cache.Keys);
        foreach ((BlockKey key, Entry entry) in _held)
        {
            if (!present.Contains(key))
            {
                Release(entry, eviction: true);
            }
        }
    }

    private void ClearCore()
    {
        _cache.Clear();
        foreach (Entry entry in _held.Values)
        {
            Release(entry, eviction: false);
        }
    }

    /// <summary>
    /// The cache's post-eviction callback (thread pool). It takes the write lock like every other
    /// release, which is what keeps the class's promise: a store method that finds an entry already
    /// claimed by a callback cannot return before that callback's accounting is done, because the
    /// callback claims and accounts inside one hold of the lock the method is waiting for. It cannot
    /// deadlock: <see cref="MemoryCache"/> never runs these callbacks on the thread that evicts
    /// (it queues them), so no code that holds the lock waits for a callback.
    /// </summary>
    private void OnEvicted(Entry entry, EvictionReason reason)
    {
        lock (_writeLock)
        {
            Release(entry, eviction: reason is EvictionReason.Capacity or EvictionReason.Expired or EvictionReason.TokenExpired, fromCallback: true);
        }
    }

    /// <summary>
    /// Drops the store's reference on an entry's block and its bytes, exactly once per entry,
    /// whichever of the store's code paths or the cache's eviction callback gets there first.
    /// </summary>
    /// <remarks>Always called under the write lock, so the claim and the accounting are one step to every other path.</remarks>
    private bool Release(Entry entry, bool eviction, bool fromCallback = false)
    {
        if (!entry.TryMarkReleased(out bool wasHeld))
        {
            return false;
        }

        if (fromCallback)
        {
            AfterCallbackClaimedEntry?.Invoke();
        }

        _held.TryRemove(new KeyValuePair<BlockKey, Entry>(entry.Block.Key, entry));
        Interlocked.Add(ref _bytes, -entry.Block.SizeInBytes);
        Interlocked.Decrement(ref _entries);
        if (eviction && wasHeld)
        {
            Interlocked.Increment(ref _evictions);
        }

        entry.Block.Release();
        return true;
    }

    /// <summary>The cache's value: one block the store holds a reference on, and whether it still does.</summary>
    private sealed class Entry(KvBlock block)
    {
        private const int Pending = 0; // acquired and counted, not yet confirmed kept by the cache
        private const int Held = 1;
        private const int Released = 2;

        private int _state;

        public KvBlock Block { get; } = block;

        public bool TryMarkHeld() => Interlocked.CompareExchange(ref _state, Held, Pending) == Pending;

        public bool TryMarkReleased(out bool wasHeld)
        {
            int previous = Interlocked.Exchange(ref _state, Released);
            wasHeld = previous == Held;
            return previous != Released;
        }
    }

    private sealed class TimeProviderClock(TimeProvider timeProvider) : ISystemClock
    {
        public DateTimeOffset UtcNow => timeProvider.GetUtcNow();
    }
}
