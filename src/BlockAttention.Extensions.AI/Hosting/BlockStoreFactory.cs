using BlockAttention.Caching;
using BlockAttention.Models;
using Microsoft.Extensions.Logging;

namespace BlockAttention.Hosting;

/// <summary>Turns the <see cref="BlockAttentionOptions.Store"/> spec into a block store.</summary>
internal static class BlockStoreFactory
{
    /// <summary>Null when <paramref name="spec"/> names a store this host can build with <paramref name="tierFactories"/>, else why not.</summary>
    public static string? Validate(string? spec, IEnumerable<IKvBlockStoreTierFactory> tierFactories)
    {
        if (!KvBlockStoreSpec.TryParse(spec, out var parsed, out string? error))
        {
            return error;
        }

        if (parsed!.Tiers.Count == 0)
        {
            return $"'{spec}' keeps no passages; a host needs a store: memory, file:DIR, redis:HOST:PORT, memory+file:DIR or memory+redis:HOST:PORT";
        }

        if (parsed.Tiers.Any(t => t.Kind == KvBlockStoreKind.Redis) && !tierFactories.Any(f => f.Kind == KvBlockStoreKind.Redis))
        {
            return $"'{spec}' names a Redis server: add the BlockAttention.Redis package and call services.AddBlockAttentionRedis()";
        }

        return null;
    }

    /// <summary>
    /// The store for <paramref name="options"/>, with its tiers sized by the options and reading
    /// blocks in <paramref name="model"/>'s dtype onto its device.
    /// </summary>
    public static IKvBlockStore Create(BlockAttentionOptions options, ModelInfo model, IEnumerable<IKvBlockStoreTierFactory> tierFactories, ILoggerFactory? loggerFactory)
    {
        if (Validate(options.Store, tierFactories) is { } error)
        {
            throw new InvalidOperationException(error);
        }

        long memoryBytes = options.StoreMaxBytes
            ?? (options.StoreMaxTokens is long tokens ? checked(tokens * model.KvBytesPerToken) : BlockAttentionOptions.DefaultStoreMaxBytes);
        var redis = tierFactories.LastOrDefault(f => f.Kind == KvBlockStoreKind.Redis);
        var settings = new KvBlockStoreSettings
        {
            DType = model.DType,
            Device = model.Device.ToString(),
            MemoryMaxBytes = memoryBytes,
            FileMaxBytes = options.StoreFileMaxBytes,
            LoggerFactory = loggerFactory,
            Tiered = new TieredKvBlockStoreOptions { LoggerFactory = loggerFactory },
            CreateRedisTier = redis is null ? null : redis.Create,
        };
        return KvBlockStoreFactory.Create(KvBlockStoreSpec.Parse(options.Store), settings)!;
    }
}
