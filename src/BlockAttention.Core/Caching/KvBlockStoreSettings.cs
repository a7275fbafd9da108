using Microsoft.Extensions.Logging;
using TorchSharp;

namespace BlockAttention.Caching;

/// <summary>
/// What <see cref="KvBlockStoreFactory"/> needs besides a <see cref="KvBlockStoreSpec"/> to build
/// a store: the model's dtype and device (where blocks read from a file or Redis are loaded), the
/// tiers' budgets, and a way to create Redis tiers.
/// </summary>
public sealed record KvBlockStoreSettings
{
    /// <summary>The model's dtype; stored blocks of another dtype are misses. Default float32.</summary>
    public torch.ScalarType DType { get; init; } = torch.ScalarType.Float32;

    /// <summary>The model's device, e.g. <c>cpu</c> or <c>cuda:0</c>. Default <c>cpu</c>.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>The memory tier's budget in bytes of tensor memory (default 2 GiB).</summary>
    public long MemoryMaxBytes { get; init; } = 2L << 30;

    /// <summary>The file tier's budget in bytes of files (default 16 GiB).</summary>
    public long FileMaxBytes { get; init; } = 16L << 30;

    /// <summary>Options of the tiered store when the spec has two tiers.</summary>
    public TieredKvBlockStoreOptions Tiered { get; init; } = new();

    /// <summary>Where the stores log (default: nowhere).</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>
    /// Creates a Redis tier from its spec; null where no Redis support is referenced. The
    /// BlockAttention.Redis package provides it (<c>RedisKvBlockStoreFactory</c>).
    /// </summary>
    public Func<KvBlockStoreTierSpec, KvBlockStoreSettings, IKvBlockStore>? CreateRedisTier { get; init; }
}
