using BlockAttention.Models;

namespace BlockAttention.Attention;

/// <summary>
/// Hands out request KV caches, keeps a few for reuse, and bounds the memory they take together:
/// a request that does not fit waits, in arrival order, for earlier ones to return theirs.
/// </summary>
/// <remarks>
/// <para>
/// On the CPU a fresh cache of a 4K-token prompt (180 MB for SmolLM2-135M) is new pages from the
/// kernel, and touching them for the first time cost more than the re-encoding itself: 450 ms
/// against 28 ms into a reused cache (2-core EPYC). GPU memory comes from libtorch's caching
/// allocator either way, so there the pool changes little. A cache is handed out to one request
/// at a time; capacities are rounded up so that prompts of similar length share caches.
/// </para>
/// <para>
/// The bound (<c>maxBytes</c>) covers caches in use and idle ones; idle caches are freed first
/// when a request needs room. A request larger than the bound itself fails at once.
/// </para>
/// </remarks>
internal sealed class KvCachePool(ICausalLanguageModel model, int maxIdle, long? maxBytes = null) : IDisposable
{
    private const int Granularity = 1024;
    private readonly List<KvCache> _idle = [];
    private readonly LinkedList<Waiter> _waiting = new();
    private readonly object _lock = new();
    private long _rentedBytes;
    private long _idleBytes;
    private bool _disposed;

    /// <summary>Bytes of the caches handed out now.</summary>
    public long RentedBytes
    {
        get
        {
            lock (_lock)
            {
                return _rentedBytes;
            }
        }
    }

    /// <summary>Requests waiting for cache memory.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>An empty cache holding at least <paramref name="capacity"/> positions (at most the model's).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is not between 1 and the model's positions.</exception>
    public KvCache Rent(int capacity) => RentAsync(capacity, CancellationToken.None).AsTask().GetAwaiter().GetResult();

    /// <summary>
    /// An empty cache holding at least <paramref name="capacity"/> positions, once the memory bound
    /// leaves room for it (waiting behind earlier requests).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is not between 1 and the model's positions.</exception>
    /// <exception cref="ArgumentException">The cache alone would exceed the memory bound: it could never be served.</exception>
    public async ValueTask<KvCache> RentAsync(int capacity, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, model.Info.MaxPositions);
        // Rounded up in 64 bits, then never past the model's positions (which capacity is within).
        int rounded = (int)Math.Min((capacity + (long)Granularity - 1) / Granularity * Granularity, model.Info.MaxPositions);
        long bytes = checked(rounded * model.Info.KvBytesPerToken);
        if (bytes > maxBytes)
        {
            throw new ArgumentException(
                $"the request needs a KV cache of {capacity} positions ({bytes} bytes rounded up), more than the session's MaxCacheBytes of {maxBytes}; shorten the prompt or MaxNewTokens, or raise the bound");
        }

        Waiter waiter;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_waiting.Count == 0 && TryGrant(capacity, bytes, out var grant))
            {
                return grant ?? Create(rounded);
            }

            waiter = new Waiter(capacity, bytes);
            waiter.Node = _waiting.AddLast(waiter);
        }

        KvCache? granted;
        using (cancellationToken.Register(() => Abandon(waiter, cancellationToken)))
        {
            granted = await waiter.Completion.Task.ConfigureAwait(false);
        }

        return granted ?? Create(rounded);
    }

    /// <summary>Takes a cache back when the request is done with it; keeps the newest few, frees the rest, and serves waiting requests.</summary>
    public void Return(KvCache cache)
    {
        cache.Truncate(0);
        var freed = new List<KvCache>();
        lock (_lock)
        {
            _rentedBytes -= cache.AllocatedBytes;
            if (!_disposed && maxIdle > 0)
            {
                _idle.Add(cache);
                _idleBytes += cache.AllocatedBytes;
                if (_idle.Count > maxIdle)
                {
                    freed.Add(RemoveIdle(0));
                }
            }
            else
            {
                freed.Add(cache);
            }

            // Waiters in arrival order, while the first one fits.
            while (_waiting.First is { } first && TryGrant(first.Value.Capacity, first.Value.Bytes, out var grant, freed))
            {
                _waiting.RemoveFirst();
                first.Value.Node = null;
                first.Value.Completion.TrySetResult(grant);
            }
        }

        freed.ForEach(c => c.Dispose());
    }

    /// <summary>Frees every idle cache; waiting requests fail with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            _disposed = true;
            foreach (var cache in _idle)
            {
                cache.Dispose();
            }

            _idle.Clear();
            _idleBytes = 0;
            foreach (var waiter in _waiting)
            {
                waiter.Completion.TrySetException(new ObjectDisposedException(nameof(BlockSession)));
            }

            _waiting.Clear();
        }
    }

    /// <summary>
    /// Under the lock: an idle cache that fits (not more than twice the size needed), or room for a
    /// new one (null), freeing idle caches to make it; false when the bound leaves no room yet.
    /// </summary>
    private bool TryGrant(int capacity, long bytes, out KvCache? grant, List<KvCache>? freed = null)
    {
        var fit = _idle.Where(c => c.Capacity >= capacity && c.Capacity <= 2L * Math.Max(capacity, Granularity)).MinBy(c => c.Capacity);
        if (fit is not null)
        {
            RemoveIdle(_idle.IndexOf(fit));
            _rentedBytes += fit.AllocatedBytes;
            grant = fit;
            return true;
        }

        grant = null;
        if (maxBytes is long bound && _rentedBytes + bytes > bound)
        {
            return false; // idle caches cannot help: the caches in use leave no room
        }

        while (maxBytes is long limit && _rentedBytes + _idleBytes + bytes > limit && _idle.Count > 0)
        {
            var oldest = RemoveIdle(0);
            if (freed is not null)
            {
                freed.Add(oldest);
            }
            else
            {
                oldest.Dispose();
            }
        }

        _rentedBytes += bytes;
        return true;
    }

    private KvCache RemoveIdle(int index)
    {
        var cache = _idle[index];
        _idle.RemoveAt(index);
        _idleBytes -= cache.AllocatedBytes;
        return cache;
    }

    private KvCache Create(int rounded)
    {
        try
        {
            return model.CreateCache(rounded);
        }
        catch
        {
            lock (_lock)
            {
                _rentedBytes -= checked(rounded * model.Info.KvBytesPerToken);
            }

            throw;
        }
    }

    private void Abandon(Waiter waiter, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (waiter.Node is null)
            {
                return; // served already: the request returns the cache as usual
            }

            _waiting.Remove(waiter.Node);
            waiter.Node = null;
            waiter.Completion.TrySetCanceled(cancellationToken);
        }
    }

    private sealed class Waiter(int capacity, long bytes)
    {
        public int Capacity { get; } = capacity;

        public long Bytes { get; } = bytes;

        public TaskCompletionSource<KvCache?> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }
    }
}
