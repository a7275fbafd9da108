using System.Globalization;
using BlockAttention.Caching;

namespace BlockAttention.Redis;

/// <summary>Builds stores from <see cref="KvBlockStoreSpec"/>s, Redis tiers included.</summary>
public static class RedisKvBlockStoreFactory
{
    /// <summary>
    /// Returns <paramref name="settings"/> with Redis support: a <c>redis:HOST:PORT</c> tier becomes
    /// a <see cref="RedisKvBlockStore"/> with <paramref name="redis"/>'s options (its
    /// <see cref="RedisKvBlockStoreOptions.Configuration"/>, dtype, device and logger are taken from
    /// the spec and the settings).
    /// </summary>
    public static KvBlockStoreSettings WithRedis(this KvBlockStoreSettings settings, RedisKvBlockStoreOptions? redis = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var template = redis ?? new RedisKvBlockStoreOptions();
        return settings with { CreateRedisTier = (tier, current) => CreateTier(tier, current, template) };
    }

    /// <summary>The store of a Redis tier: <paramref name="template"/>'s options, with the tier's server and the settings' dtype, device and logger.</summary>
    internal static RedisKvBlockStore CreateTier(KvBlockStoreTierSpec tier, KvBlockStoreSettings settings, RedisKvBlockStoreOptions template) =>
        new(template with
        {
            Configuration = ConfigurationOf(tier),
            DType = settings.DType,
            Device = settings.Device,
            LoggerFactory = template.LoggerFactory ?? settings.LoggerFactory,
        });

    /// <summary>Creates the store of <paramref name="spec"/> (null for <c>none</c>), Redis tiers included.</summary>
    /// <exception cref="FormatException">The spec string is malformed.</exception>
    public static IKvBlockStore? Create(string spec, KvBlockStoreSettings settings, RedisKvBlockStoreOptions? redis = null) =>
        KvBlockStoreFactory.Create(KvBlockStoreSpec.Parse(spec), settings.WithRedis(redis));

    /// <summary>The StackExchange.Redis configuration string of a Redis tier.</summary>
    public static string ConfigurationOf(KvBlockStoreTierSpec tier)
    {
        ArgumentNullException.ThrowIfNull(tier);
        if (tier.Kind != KvBlockStoreKind.Redis)
        {
            throw new ArgumentException($"{tier} is not a Redis tier", nameof(tier));
        }

        string host = tier.Host!.Contains(':', StringComparison.Ordinal) ? $"[{tier.Host}]" : tier.Host;
        return string.Create(CultureInfo.InvariantCulture, $"{host}:{tier.Port}");
    }
}
