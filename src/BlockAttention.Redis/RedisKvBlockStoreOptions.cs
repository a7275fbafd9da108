using Microsoft.Extensions.Logging;
using TorchSharp;

namespace BlockAttention.Redis;

/// <summary>Options for <see cref="RedisKvBlockStore"/>.</summary>
public sealed record RedisKvBlockStoreOptions
{
    /// <summary>
    /// The server, as a StackExchange.Redis configuration string (e.g. <c>localhost:6379</c> or
    /// <c>cache1:6379,password=...</c>). Required unless a connection is passed to the store.
    /// </summary>
    public string? Configuration { get; init; }

    /// <summary>Prefix of every key the store writes (default <c>blockattn:</c>), so that one server can hold other data too.</summary>
    public string KeyPrefix { get; init; } = "blockattn:";

    /// <summary>How long a block lives after it was written (default 7 days); null keeps it until Redis evicts it.</summary>
    public TimeSpan? TimeToLive { get; init; } = TimeSpan.FromDays(7);

    /// <summary>
    /// The largest serialized block the store writes (default 256 MiB; a Redis string holds at most 512 MiB).
    /// Larger blocks are declined. The store's total size is bounded by the server's own
    /// <c>maxmemory</c> with an evicting <c>maxmemory-policy</c> such as <c>allkeys-lru</c>.
    /// </summary>
    public long MaxBlockBytes { get; init; } = 256L << 20;

    /// <summary>
    /// The most time one lookup or write may take, all round trips included (default 2 s). Past
    /// it the lookup is a miss (the block is encoded) and the write is dropped.
    /// </summary>
    public TimeSpan OperationTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The most time to wait for the server at connect (default 1 s); the store reconnects in the background after.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// After a failure (server down, timeout), lookups and writes skip Redis for this long (default
    /// 1 s) instead of each paying the timeout; then the next one tries again.
    /// </summary>
    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Bytes per round trip when a block is written or read in pieces (default 4 MiB): bounds the managed memory per transfer.</summary>
    public int ChunkBytes { get; init; } = 4 << 20;

    /// <summary>The model's dtype; stored blocks of another dtype are misses. Default float32.</summary>
    public torch.ScalarType DType { get; init; } = torch.ScalarType.Float32;

    /// <summary>The device blocks are loaded onto: the model's. Default <c>cpu</c>.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Where failures and damaged values are reported (default: nowhere).</summary>
    public ILoggerFactory? LoggerFactory { get; init; }
}
