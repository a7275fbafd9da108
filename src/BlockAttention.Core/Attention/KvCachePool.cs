using BlockAttention.Models;

namespace BlockAttention.Attention;

/// <summary>
/// Keeps a few request KV caches for reuse, so that a request writes into memory that is
/// already mapped instead of a fresh allocation.
/// </summary>
/// <remarks>
/// On the CPU a fresh cache of a 4K-token prompt (180 MB for SmolLM2-135M) is new pages from the
/// kernel, and touching them for the first time cost more than the re-encoding itself: 450 ms
/// against 28 ms into a reused cache (2-core EPYC). GPU memory comes from libtorch's caching
/// allocator either way, so there the pool changes little. A cache is handed out to one request
/// at a time; capacities are rounded up so that prompts of similar length share caches.
/// </remarks>
internal sealed class KvCachePool(ICausalLanguageModel model, int maxIdle) : IDisposable
{
    private const int Granularity = 1024;
    private readonly List<KvCache> _idle = [];
    private readonly Lock _lock = new();
    private bool _disposed;

    /// <summary>An empty cache holding at least <paramref name="capacity"/> positions (at most the model's).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="capacity"/> is not between 1 and the model's positions.</exception>
    public KvCache Rent(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, model.Info.MaxPositions);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // The smallest idle cache that fits, unless it is more than twice the size needed.
            var fit = _idle.Where(c => c.Capacity >= capacity && c.Capacity <= 2L * Math.Max(capacity, Granularity))
                .OrderBy(c => c.Capacity).FirstOrDefault();
            if (fit is not null)
            {
                _idle.Remove(fit);
                return fit;
            }
        }

        // Rounded up in 64 bits, then never past the model's positions (which capacity is within).
        long rounded = (capacity + (long)Granularity - 1) / Granularity * Granularity;
        return model.CreateCache((int)Math.Min(rounded, model.Info.MaxPositions));
    }

    /// <summary>Takes a cache back when the request is done with it; keeps the newest few, frees the rest.</summary>
    public void Return(KvCache cache)
    {
        cache.Truncate(0);
        KvCache? evicted = cache;
        lock (_lock)
        {
            if (!_disposed && maxIdle > 0)
            {
                _idle.Add(cache);
                evicted = _idle.Count > maxIdle ? _idle[0] : null;
                if (evicted is not null)
                {
                    _idle.RemoveAt(0);
                }
            }
        }

        evicted?.Dispose();
    }

    /// <summary>Frees every idle cache.</summary>
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
        }
    }
}
