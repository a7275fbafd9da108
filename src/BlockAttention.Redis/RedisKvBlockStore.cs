using System.Diagnostics;
using BlockAttention.Caching;
using BlockAttention.Caching.Persistence;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using StackExchange.Redis;
using static TorchSharp.torch;

namespace BlockAttention.Redis;

/// <summary>
/// An <see cref="IKvBlockStore"/> on a Redis server (or anything that speaks its protocol, such as
/// Garnet): one string per block, in <see cref="KvBlockFormat"/>, so processes on any machine
/// share encoded passages and keep them across restarts.
/// </summary>
/// <remarks>
/// <para>
/// Never fails or hangs a request: every lookup and write has an overall timeout
/// (<see cref="RedisKvBlockStoreOptions.OperationTimeout"/>); when the server is down, slow, or
/// answers garbage, a lookup is a miss (the block is encoded), a write is dropped, and a warning is
/// logged once per outage. After a failure the store skips Redis for
/// <see cref="RedisKvBlockStoreOptions.RetryAfter"/>, then tries again, and reconnects by itself
/// when the server is back.
/// </para>
/// <para>
/// A block is written in pieces to a temporary key (which expires by itself if the writer dies)
/// and renamed over its final key, so readers never see a partial block. Reads fetch it in pieces
/// too and verify it entirely (format version, model fingerprint, dtype, token ids, checksum); a
/// value that fails is deleted and is a miss.
/// </para>
/// <para>
/// Size: each key gets <see cref="RedisKvBlockStoreOptions.TimeToLive"/>; the total is bounded by
/// the server's own eviction: configure <c>maxmemory</c> and <c>maxmemory-policy allkeys-lru</c>
/// (or <c>volatile-lru</c>, since every block has a TTL) on the server. An evicted block is a miss.
/// </para>
/// </remarks>
public sealed class RedisKvBlockStore : IKvBlockStore, IDisposable
{
    private static readonly TimeSpan s_abandonedWriteExpiry = TimeSpan.FromMinutes(10);

    private readonly RedisKvBlockStoreOptions _options;
    private readonly IConnectionMultiplexer _connection;
    private readonly bool _ownsConnection;
    private readonly ScalarType _dtype;
    private readonly Device _device;
    private readonly ILogger _logger;
    private long _skipUntil; // Stopwatch timestamp; 0 when Redis is believed up
    private int _outage; // 1 while a failure has been logged and no success seen since
    private long _hits, _misses, _sets, _rejected, _failures, _damaged;

    /// <summary>Connects to <see cref="RedisKvBlockStoreOptions.Configuration"/>; returns even when the server is down (the store then misses until it is up).</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public RedisKvBlockStore(RedisKvBlockStoreOptions options)
        : this(options, Connect(options), ownsConnection: true)
    {
    }

    /// <summary>Uses an existing connection, which the store does not dispose.</summary>
    public RedisKvBlockStore(RedisKvBlockStoreOptions options, IConnectionMultiplexer connection)
        : this(options, connection, ownsConnection: false)
    {
    }

    private RedisKvBlockStore(RedisKvBlockStoreOptions options, IConnectionMultiplexer connection, bool ownsConnection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        _options = options;
        _connection = connection;
        _ownsConnection = ownsConnection;
        _dtype = options.DType;
        _device = new Device(options.Device);
        _logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger<RedisKvBlockStore>();
    }

    /// <summary>Values that failed verification on read (and were deleted) since the store was created.</summary>
    public long DamagedValues => Interlocked.Read(ref _damaged);

    /// <summary>Lookups and writes that failed or were skipped because Redis was down, slow or refusing.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <inheritdoc />
    /// <remarks>Entries, Bytes and Evictions are the server's business and reported as 0.</remarks>
    public KvBlockStoreStatistics Statistics => new(
        Interlocked.Read(ref _hits), Interlocked.Read(ref _misses), Interlocked.Read(ref _sets), Interlocked.Read(ref _rejected), 0, 0, 0);

    /// <summary>The Redis key of the block of <paramref name="key"/>.</summary>
    public string KeyOf(BlockKey key) => $"{_options.KeyPrefix}{key.ModelFingerprint}:{key.TokenHash}:{key.TokenCount}";

    /// <inheritdoc />
    public async ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        KvBlock? block = null;
        if (Available())
        {
            int[] wanted = tokens.ToArray();
            block = await RunAsync(() => Read(key, wanted), "look up", key, abandon: static late => late?.Release(), cancellationToken).ConfigureAwait(false);
        }
        else
        {
            Interlocked.Increment(ref _failures);
        }

        Interlocked.Increment(ref block is null ? ref _misses : ref _hits);
        return block;
    }

    /// <inheritdoc />
    /// <remarks>Returns false, without throwing, when the block is too large or Redis is down, slow or refusing.</remarks>
    public async ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(block);
        cancellationToken.ThrowIfCancellationRequested();
        if (KvBlockFormat.SerializedLength(block) > _options.MaxBlockBytes)
        {
            Interlocked.Increment(ref _rejected);
            return false;
        }

        if (!Available())
        {
            Interlocked.Increment(ref _failures);
            Interlocked.Increment(ref _rejected);
            return false;
        }

        if (!block.TryAcquire())
        {
            throw new ArgumentException($"block {block.Key} was already freed", nameof(block));
        }

        // The write releases the block itself when it ends, which may be after a timeout returned.
        bool written = await RunAsync(() =>
        {
            try
            {
                return Write(block);
            }
            finally
            {
                block.Release();
            }
        }, "store", block.Key, abandon: null, cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref written ? ref _sets : ref _rejected);
        return written;
    }

    /// <inheritdoc />
    public async ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!Available())
        {
            return false;
        }

        return await RunAsync(() => _connection.GetDatabase().KeyDelete(KeyOf(key)), "remove", key, abandon: null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Closes the connection if the store opened it.</summary>
    public void Dispose()
    {
        if (_ownsConnection)
        {
            _connection.Dispose();
        }
    }

    private static ConnectionMultiplexer Connect(RedisKvBlockStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Configuration, nameof(options.Configuration));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.OperationTimeout, TimeSpan.Zero, nameof(options.OperationTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.ConnectTimeout, TimeSpan.Zero, nameof(options.ConnectTimeout));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.RetryAfter, TimeSpan.Zero, nameof(options.RetryAfter));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ChunkBytes, 4096, nameof(options.ChunkBytes));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxBlockBytes, nameof(options.MaxBlockBytes));
        var configuration = ConfigurationOptions.Parse(options.Configuration);
        configuration.AbortOnConnectFail = false; // start even while the server is down; reconnect in the background
        configuration.ConnectTimeout = (int)options.ConnectTimeout.TotalMilliseconds;
        configuration.ConnectRetry = 1;
        configuration.SyncTimeout = (int)options.OperationTimeout.TotalMilliseconds;
        configuration.AsyncTimeout = (int)options.OperationTimeout.TotalMilliseconds;
        configuration.BacklogPolicy = BacklogPolicy.FailFast; // no queueing of commands while disconnected
        configuration.ReconnectRetryPolicy = new LinearRetry(250);
        configuration.ClientName ??= "blockattention";
        return ConnectionMultiplexer.Connect(configuration);
    }

    private KvBlock? Read(BlockKey key, ReadOnlySpan<int> tokens)
    {
        long deadline = RedisDeadline.After(_options.OperationTimeout);
        var database = _connection.GetDatabase();
        string redisKey = KeyOf(key);
        long length = database.StringLength(redisKey);
        if (length == 0)
        {
            return null;
        }

        using var stream = new RedisRangeStream(database, redisKey, length, _options.ChunkBytes, deadline);
        try
        {
            return KvBlockFormat.Read(stream, key, tokens, _dtype, _device, length);
        }
        catch (KvBlockFormatException e)
        {
            Interlocked.Increment(ref _damaged);
            _logger.LogWarning("Redis value {RedisKey} is unusable ({Reason}); deleted, the block will be encoded again", redisKey, e.Message);
            database.KeyDelete(redisKey, CommandFlags.FireAndForget);
            return null;
        }
    }

    private bool Write(KvBlock block)
    {
        long deadline = RedisDeadline.After(_options.OperationTimeout);
        var database = _connection.GetDatabase();
        string redisKey = KeyOf(block.Key);
        string temporary = $"{redisKey}:writing:{Guid.NewGuid():N}";
        var expiry = _options.TimeToLive is { } ttl && ttl < s_abandonedWriteExpiry ? ttl : s_abandonedWriteExpiry;
        try
        {
            using (var stream = new RedisAppendStream(database, temporary, expiry, _options.ChunkBytes, deadline))
            {
                KvBlockFormat.Write(block, stream);
                stream.Flush();
            }

            RedisDeadline.ThrowIfPassed(deadline);
            // RENAME replaces any earlier value atomically and keeps the temporary key's expiry.
            database.KeyRename(temporary, redisKey);
            if (_options.TimeToLive is { } timeToLive)
            {
                if (timeToLive != expiry)
                {
                    database.KeyExpire(redisKey, timeToLive);
                }
            }
            else
            {
                database.KeyPersist(redisKey);
            }

            return true;
        }
        catch
        {
            database.KeyDelete(temporary, CommandFlags.FireAndForget);
            throw;
        }
    }

    private bool Available()
    {
        long until = Interlocked.Read(ref _skipUntil);
        return until == 0 || Stopwatch.GetTimestamp() >= until;
    }

    /// <summary>
    /// Runs one synchronous Redis operation on the thread pool, bounded by the operation timeout
    /// (plus a grace period for the last round trip); a failure is logged, opens the retry
    /// window, and yields the default result.
    /// </summary>
    private async Task<T?> RunAsync<T>(Func<T> operation, string what, BlockKey key, Action<T>? abandon, CancellationToken cancellationToken)
    {
        var work = Task.Run(operation, CancellationToken.None);
        try
        {
            T result = await work.WaitAsync(_options.OperationTimeout * 2, cancellationToken).ConfigureAwait(false);
            if (Interlocked.Exchange(ref _outage, 0) == 1)
            {
                _logger.LogInformation("Redis is answering again; using it for blocks");
            }

            Interlocked.Exchange(ref _skipUntil, 0);
            return result;
        }
        catch (Exception e) when (e is RedisException or TimeoutException or IOException or InvalidOperationException
                                  || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            Interlocked.Increment(ref _failures);
            Interlocked.Exchange(ref _skipUntil, Stopwatch.GetTimestamp() + (long)(_options.RetryAfter.TotalSeconds * Stopwatch.Frequency));
            if (Interlocked.Exchange(ref _outage, 1) == 0)
            {
                _logger.LogWarning(e, "Redis failed to {Operation} block {Key}; blocks are encoded instead until it answers again", what, key);
            }
            else
            {
                _logger.LogDebug(e, "Redis failed to {Operation} block {Key}", what, key);
            }

            // An operation that timed out here may still finish later: free what it returns then.
            _ = work.ContinueWith(t =>
            {
                if (t.IsCompletedSuccessfully)
                {
                    abandon?.Invoke(t.Result);
                }
                else
                {
                    _ = t.Exception;
                }
            }, TaskScheduler.Default);
            return default;
        }
    }
}
