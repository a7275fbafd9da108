using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace BlockAttention.Caching;

/// <summary>
/// A memory tier in front of a slower, persistent or shared tier (a file or Redis store): lookups
/// try memory first, then the slow tier, whose hits are promoted to memory; new blocks go to memory
/// at once and to the slow tier in the background, so a request never waits for the slow tier.
/// </summary>
/// <remarks>
/// <para>
/// Cost-aware: the store measures the slow tier's fetch bandwidth and, through
/// <see cref="IKvBlockEncodingObserver"/> (which <see cref="BlockSession"/> calls), the model's
/// encode time per token. When fetching a block would take longer than encoding it, the lookup is
/// a miss without asking the slow tier; <see cref="TieredStatistics"/> counts how often.
/// </para>
/// <para>
/// A failing slow tier never fails a request: its exceptions are logged and counted, a failed
/// lookup is a miss, a failed write leaves the block in memory only. The store owns both tiers and
/// disposes them; <see cref="DisposeAsync"/> first finishes the pending writes.
/// </para>
/// </remarks>
public sealed class TieredKvBlockStore : IKvBlockStore, IKvBlockEncodingObserver, IAsyncDisposable, IDisposable
{
    private const double SmoothingWeight = 0.2; // of the newest sample in the moving averages

    private readonly MemoryKvBlockStore _memory;
    private readonly IKvBlockStore _slow;
    private readonly TieredKvBlockStoreOptions _options;
    private readonly ILogger _logger;
    private readonly Channel<WorkItem> _writes;
    private readonly Task _writer;
    private readonly Lock _measureLock = new();
    private double _fetchBytesPerSecond;
    private double _encodeSecondsPerToken;
    private double _bytesPerToken;
    private long _memoryHits, _slowHits, _misses, _skipped, _failures, _writesBehind, _writesDropped, _pending, _sets, _rejected;
    private long _skipCounter;
    private int _disposed;

    /// <summary>Creates the store over <paramref name="memory"/> and <paramref name="slow"/>, which it then owns.</summary>
    public TieredKvBlockStore(MemoryKvBlockStore memory, IKvBlockStore slow, TieredKvBlockStoreOptions? options = null)
    {
        _memory = memory ?? throw new ArgumentNullException(nameof(memory));
        _slow = slow ?? throw new ArgumentNullException(nameof(slow));
        _options = options ?? new TieredKvBlockStoreOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(_options.MaxPendingWrites);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(_options.ProbeInterval);
        ArgumentOutOfRangeException.ThrowIfLessThan(_options.DisposeTimeout, TimeSpan.Zero);
        _logger = (_options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger<TieredKvBlockStore>();
        // One slot more than the blocks it may hold, for a flush marker.
        _writes = Channel.CreateBounded<WorkItem>(new BoundedChannelOptions(_options.MaxPendingWrites + 1)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _writer = Task.Run(WriteBehindAsync);
    }

    /// <summary>The memory tier.</summary>
    public MemoryKvBlockStore Memory => _memory;

    /// <summary>The slow tier.</summary>
    public IKvBlockStore Slow => _slow;

    /// <inheritdoc />
    /// <remarks>Hits and misses are the outcome of lookups across both tiers; the rest are the memory tier's.</remarks>
    public KvBlockStoreStatistics Statistics
    {
        get
        {
            var memory = _memory.Statistics;
            return new KvBlockStoreStatistics(
                Interlocked.Read(ref _memoryHits) + Interlocked.Read(ref _slowHits),
                Interlocked.Read(ref _misses) + Interlocked.Read(ref _skipped),
                Interlocked.Read(ref _sets), Interlocked.Read(ref _rejected), memory.Evictions, memory.Entries, memory.Bytes);
        }
    }

    /// <summary>What each tier did, the write-behind queue, and the cost model's measurements.</summary>
    public TieredKvBlockStoreStatistics TieredStatistics
    {
        get
        {
            lock (_measureLock)
            {
                return new TieredKvBlockStoreStatistics(
                    Interlocked.Read(ref _memoryHits), Interlocked.Read(ref _slowHits), Interlocked.Read(ref _misses),
                    Interlocked.Read(ref _skipped), Interlocked.Read(ref _failures), Interlocked.Read(ref _writesBehind),
                    Interlocked.Read(ref _writesDropped), Interlocked.Read(ref _pending), _fetchBytesPerSecond, _encodeSecondsPerToken);
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default)
    {
        var block = await _memory.TryGetAsync(key, tokens, cancellationToken).ConfigureAwait(false);
        if (block is not null)
        {
            Interlocked.Increment(ref _memoryHits);
            return block;
        }

        if (FetchCostsMoreThanEncoding(key.TokenCount))
        {
            Interlocked.Increment(ref _skipped);
            return null;
        }

        long started = Stopwatch.GetTimestamp();
        try
        {
            block = await _slow.TryGetAsync(key, tokens, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _failures);
            Interlocked.Increment(ref _misses);
            _logger.LogWarning(e, "The slow tier failed to look up block {Key}; encoding it instead", key);
            return null;
        }

        if (block is null)
        {
            Interlocked.Increment(ref _misses);
            return null;
        }

        RecordFetch(block.SizeInBytes, block.Length, Stopwatch.GetElapsedTime(started));
        Interlocked.Increment(ref _slowHits);
        try
        {
            await _memory.SetAsync(block, CancellationToken.None).ConfigureAwait(false); // promote
        }
        catch (ObjectDisposedException)
        {
            // Disposed meanwhile: the caller still gets its block.
        }

        return block;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Adds the block to the memory tier now and queues it for the slow tier; returns without
    /// waiting for the slow tier. True when either tier now holds or will hold the block.
    /// </remarks>
    public async ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(block);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        bool inMemory = await _memory.SetAsync(block, cancellationToken).ConfigureAwait(false);
        bool queued = false;
        if (block.TryAcquire())
        {
            if (Interlocked.Increment(ref _pending) <= _options.MaxPendingWrites && _writes.Writer.TryWrite(new WorkItem(block, null)))
            {
                queued = true;
            }
            else
            {
                Interlocked.Decrement(ref _pending);
                Interlocked.Increment(ref _writesDropped);
                block.Release();
            }
        }

        Interlocked.Increment(ref inMemory || queued ? ref _sets : ref _rejected);
        return inMemory || queued;
    }

    /// <inheritdoc />
    public async ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default)
    {
        bool fromMemory = await _memory.RemoveAsync(key, cancellationToken).ConfigureAwait(false);
        bool fromSlow = false;
        try
        {
            fromSlow = await _slow.RemoveAsync(key, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Interlocked.Increment(ref _failures);
            _logger.LogWarning(e, "The slow tier failed to remove block {Key}", key);
        }

        return fromMemory || fromSlow;
    }

    /// <summary>Waits until every block queued so far has been written to the slow tier (or dropped).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_writes.Writer.TryWrite(new WorkItem(null, done)))
        {
            await _writes.Writer.WriteAsync(new WorkItem(null, done), cancellationToken).ConfigureAwait(false);
        }

        await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public void OnBlockEncoded(int tokens, TimeSpan elapsed)
    {
        if (tokens <= 0 || elapsed <= TimeSpan.Zero)
        {
            return;
        }

        double perToken = elapsed.TotalSeconds / tokens;
        lock (_measureLock)
        {
            _encodeSecondsPerToken = _encodeSecondsPerToken == 0 ? perToken : Smooth(_encodeSecondsPerToken, perToken);
        }

        (_slow as IKvBlockEncodingObserver)?.OnBlockEncoded(tokens, elapsed);
    }

    /// <summary>Finishes the pending writes (waiting at most <see cref="TieredKvBlockStoreOptions.DisposeTimeout"/>), then disposes both tiers.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        _writes.Writer.TryComplete();
        try
        {
            await _writer.WaitAsync(_options.DisposeTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            _logger.LogWarning("The slow tier did not finish within {Timeout}; {Pending} block write(s) abandoned",
                _options.DisposeTimeout, Interlocked.Read(ref _pending));
        }

        _memory.Dispose();
        await StoreDisposal.DisposeAsync(_slow).ConfigureAwait(false);
    }

    /// <summary>Finishes the pending writes, then disposes both tiers (blocking; prefer <see cref="DisposeAsync"/>).</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    private bool FetchCostsMoreThanEncoding(int tokens)
    {
        if (!_options.CostAware)
        {
            return false;
        }

        double fetchSeconds, encodeSeconds;
        lock (_measureLock)
        {
            if (_fetchBytesPerSecond == 0 || _encodeSecondsPerToken == 0 || _bytesPerToken == 0)
            {
                return false;
            }

            fetchSeconds = tokens * _bytesPerToken / _fetchBytesPerSecond;
            encodeSeconds = tokens * _encodeSecondsPerToken;
        }

        if (fetchSeconds <= encodeSeconds)
        {
            return false;
        }

        // Still probe now and then, so that a slow tier that got faster is used again.
        return Interlocked.Increment(ref _skipCounter) % _options.ProbeInterval != 0;
    }

    private void RecordFetch(long bytes, int tokens, TimeSpan elapsed)
    {
        if (elapsed <= TimeSpan.Zero || bytes <= 0)
        {
            return;
        }

        double bandwidth = bytes / elapsed.TotalSeconds;
        lock (_measureLock)
        {
            _bytesPerToken = (double)bytes / tokens;
            _fetchBytesPerSecond = _fetchBytesPerSecond == 0 ? bandwidth : Smooth(_fetchBytesPerSecond, bandwidth);
        }
    }

    private static double Smooth(double average, double sample) => average + SmoothingWeight * (sample - average);

    private async Task WriteBehindAsync()
    {
        await foreach (var item in _writes.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            if (item.Flushed is { } flushed)
            {
                flushed.TrySetResult();
                continue;
            }

            var block = item.Block!;
            try
            {
                lock (_measureLock)
                {
                    _bytesPerToken = (double)block.SizeInBytes / block.Length;
                }

                bool kept = await _slow.SetAsync(block, CancellationToken.None).ConfigureAwait(false);
                Interlocked.Increment(ref kept ? ref _writesBehind : ref _writesDropped);
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref _failures);
                Interlocked.Increment(ref _writesDropped);
                _logger.LogWarning(e, "The slow tier failed to store block {Key}; it stays in memory only", block.Key);
            }
            finally
            {
                Interlocked.Decrement(ref _pending);
                block.Release();
            }
        }
    }

    private readonly record struct WorkItem(KvBlock? Block, TaskCompletionSource? Flushed);
}
