using BlockAttention.Caching;
using BlockAttention.Redis;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Lets a host's store spec name Redis tiers.</summary>
public static class RedisServiceCollectionExtensions
{
    /// <summary>
    /// Lets <c>AddBlockAttention</c>'s <c>Store</c> setting use <c>redis:HOST:PORT</c> and
    /// <c>memory+redis:HOST:PORT</c>, each Redis tier with the options <paramref name="template"/> gives
    /// (key prefix, time to live, timeouts; the server comes from the spec).
    /// </summary>
    public static IServiceCollection AddBlockAttentionRedis(this IServiceCollection services, RedisKvBlockStoreOptions? template = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IKvBlockStoreTierFactory>(new RedisKvBlockStoreTierFactory(template)));
        return services;
    }
}
