using BlockAttention.AspNetCore;
using BlockAttention.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers the services of the BlockAttention endpoints (<c>MapBlockAttentionEndpoints</c>).</summary>
public static class BlockAttentionServerServiceCollectionExtensions
{
    /// <summary>
    /// Registers the endpoints' limits and queue with settings from <paramref name="configuration"/>
    /// (usually <c>builder.Configuration.GetSection("BlockAttentionServer")</c>; see <see cref="BlockAttentionServerOptions"/>).
    /// </summary>
    /// <remarks>
    /// The model, store, session and chat client come from <c>AddBlockAttention</c>, which must be
    /// registered too. The settings are validated at start-up, each error naming its key; error
    /// messages for exceeded limits name the key as well.
    /// </remarks>
    public static IServiceCollection AddBlockAttentionServer(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        string path = configuration is IConfigurationSection section ? section.Path : "";
        services.AddOptions<BlockAttentionServerOptions>().Bind(configuration).PostConfigure(options => options.SectionPath = path);
        return AddCore(services);
    }

    /// <summary>
    /// Registers the endpoints' limits and queue with settings made by <paramref name="configure"/>
    /// (none: the defaults); see <see cref="AddBlockAttentionServer(IServiceCollection, IConfiguration)"/>.
    /// </summary>
    public static IServiceCollection AddBlockAttentionServer(this IServiceCollection services, Action<BlockAttentionServerOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var options = services.AddOptions<BlockAttentionServerOptions>().PostConfigure(options => options.SectionPath = nameof(BlockAttentionServerOptions));
        if (configure is not null)
        {
            options.Configure(configure);
        }

        return AddCore(services);
    }

    private static IServiceCollection AddCore(IServiceCollection services)
    {
        services.AddOptions<BlockAttentionServerOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BlockAttentionServerOptions>, BlockAttentionServerOptionsValidator>());
        services.AddMetrics();
        services.TryAddSingleton<PromptLimits>();
        services.TryAddSingleton<ServerMetrics>();
        services.TryAddSingleton<GenerationQueue>();
        return services;
    }
}
