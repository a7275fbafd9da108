using BlockAttention.Caching;

namespace BlockAttention.Redis;

/// <summary>
/// Creates <c>redis:HOST:PORT</c> tiers for hosts that build their store from a spec (such as
/// <c>AddBlockAttention</c>); register it with <c>services.AddBlockAttentionRedis()</c>.
/// </summary>
/// <param name="template">Options every Redis tier gets (key prefix, time to live, timeouts); the server, dtype and device come from the spec and the model. Null: the defaults.</param>
public sealed class RedisKvBlockStoreTierFactory(RedisKvBlockStoreOptions? template = null) : IKvBlockStoreTierFactory
{
    private readonly RedisKvBlockStoreOptions _template = template ?? new RedisKvBlockStoreOptions();

    /// <inheritdoc/>
    public KvBlockStoreKind Kind => KvBlockStoreKind.Redis;

    /// <inheritdoc/>
    public IKvBlockStore Create(KvBlockStoreTierSpec tier, KvBlockStoreSettings settings)
    {
        ArgumentNullException.ThrowIfNull(tier);
        ArgumentNullException.ThrowIfNull(settings);
        return RedisKvBlockStoreFactory.CreateTier(tier, settings, _template);
    }
}
