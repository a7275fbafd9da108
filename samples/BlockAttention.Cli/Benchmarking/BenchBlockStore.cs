using BlockAttention.Caching;

namespace BlockAttention.Cli.Benchmarking;

/// <summary>
/// The smallest correct <see cref="IKvBlockStore"/>: a dictionary, no size limit, no eviction.
/// </summary>
/// <remarks>
/// Stand-in until <c>MemoryKvBlockStore</c> lands in Core (it is on another branch); the benchmark
/// creates stores only through <see cref="Create"/>, so switching is one line. A lookup is a hash
/// of the ids plus a dictionary probe either way, so TTFT figures do not depend on which store it is.
/// </remarks>
internal sealed class BenchBlockStore : IKvBlockStore, IDisposable
{
    private readonly Dictionary<BlockKey, KvBlock> _blocks = [];
    private readonly Lock _lock = new();
    private long _hits;
    private long _misses;
    private long _sets;
    private long _rejected;
    private long _bytes;

    /// <summary>A new, empty store: the one place to switch to <c>MemoryKvBlockStore</c>.</summary>
    public static BenchBlockStore Create() => new();

    public KvBlockStoreStatistics Statistics
    {
        get
        {
            lock (_lock)
            {
                return new KvBlockStoreStatistics(_hits, _misses, _sets, _rejected, 0, _blocks.Count, _bytes);
            }
        }
    }

    public ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            // Equal ids, not just an equal hash, and a reference for the caller before the lock is left.
            if (_blocks.TryGetValue(key, out var block) && block.Encodes(tokens.Span) && block.TryAcquire())
            {
                _hits++;
                return ValueTask.FromResult<KvBlock?>(block);
            }

            _misses++;
            return ValueTask.FromResult<KvBlock?>(null);
        }
    }

    public ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(block);
        lock (_lock)
        {
            if (_blocks.ContainsKey(block.Key) || !block.TryAcquire())
            {
                _rejected++;
                return ValueTask.FromResult(false);
            }

            _blocks.Add(block.Key, block);
            _sets++;
            _bytes += block.SizeInBytes;
            return ValueTask.FromResult(true);
        }
    }

    public ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default)
    {
        KvBlock? removed;
        lock (_lock)
        {
            if (!_blocks.Remove(key, out removed))
            {
                return ValueTask.FromResult(false);
            }

            _bytes -= removed.SizeInBytes;
        }

        removed.Release();
        return ValueTask.FromResult(true);
    }

    /// <summary>Drops every block (their tensors are freed once no request holds them).</summary>
    public void Clear()
    {
        KvBlock[] all;
        lock (_lock)
        {
            all = [.. _blocks.Values];
            _blocks.Clear();
            _bytes = 0;
        }

        foreach (var block in all)
        {
            block.Release();
        }
    }

    public void Dispose() => Clear();
}
