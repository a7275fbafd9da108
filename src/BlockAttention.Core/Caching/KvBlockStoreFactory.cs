using BlockAttention.Caching.Persistence;

namespace BlockAttention.Caching;

/// <summary>Builds the store a <see cref="KvBlockStoreSpec"/> describes.</summary>
public static class KvBlockStoreFactory
{
    /// <summary>
    /// Creates the store of <paramref name="spec"/>, or null for <c>none</c>. The caller owns the
    /// store: dispose it (asynchronously for a tiered store, which then finishes its pending
    /// writes) when done.
    /// </summary>
    /// <exception cref="NotSupportedException">The spec names Redis, but <see cref="KvBlockStoreSettings.CreateRedisTier"/> is not set.</exception>
    /// <exception cref="IOException">A file tier's directory cannot be created or listed.</exception>
    public static IKvBlockStore? Create(KvBlockStoreSpec spec, KvBlockStoreSettings settings)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(settings);
        switch (spec.Tiers.Count)
        {
            case 0:
                return null;
            case 1:
                return CreateTier(spec.Tiers[0], settings);
            default:
                var memory = CreateMemory(settings);
                try
                {
                    var slow = CreateTier(spec.Tiers[1], settings);
                    return new TieredKvBlockStore(memory, slow, settings.Tiered);
                }
                catch
                {
                    memory.Dispose();
                    throw;
                }
        }
    }

    /// <summary>Parses <paramref name="spec"/> and creates its store; see <see cref="Create(KvBlockStoreSpec, KvBlockStoreSettings)"/>.</summary>
    /// <exception cref="FormatException">The string is not a spec.</exception>
    public static IKvBlockStore? Create(string spec, KvBlockStoreSettings settings) => Create(KvBlockStoreSpec.Parse(spec), settings);

    private static IKvBlockStore CreateTier(KvBlockStoreTierSpec tier, KvBlockStoreSettings settings) => tier.Kind switch
    {
        KvBlockStoreKind.Memory => CreateMemory(settings),
        KvBlockStoreKind.File => new FileKvBlockStore(new FileKvBlockStoreOptions
        {
            Directory = tier.Directory!,
            MaxBytes = settings.FileMaxBytes,
            DType = settings.DType,
            Device = settings.Device,
            LoggerFactory = settings.LoggerFactory,
        }),
        KvBlockStoreKind.Redis => settings.CreateRedisTier?.Invoke(tier, settings)
            ?? throw new NotSupportedException($"{tier} needs Redis support: reference the BlockAttention.Redis package and create the store with RedisKvBlockStoreFactory"),
        _ => throw new ArgumentOutOfRangeException(nameof(tier), tier.Kind, "unknown store kind"),
    };

    private static MemoryKvBlockStore CreateMemory(KvBlockStoreSettings settings) =>
        new(new MemoryKvBlockStoreOptions { MaxBytes = settings.MemoryMaxBytes });
}
