using System.Diagnostics.Metrics;
using BlockAttention;
using BlockAttention.AI;
using BlockAttention.Caching;
using BlockAttention.Hosting;
using BlockAttention.Llama;
using BlockAttention.Models;
using BlockAttention.Prompts;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers BlockAttention in a service collection.</summary>
public static class BlockAttentionServiceCollectionExtensions
{
    /// <summary>
    /// Registers BlockAttention with settings from <paramref name="configuration"/> (usually
    /// <c>builder.Configuration.GetSection("BlockAttention")</c>; see <see cref="BlockAttentionOptions"/>).
    /// </summary>
    /// <remarks>
    /// Registers, as singletons: the model (<see cref="LlamaModel"/> and <see cref="ICausalLanguageModel"/>),
    /// the block store (<see cref="IKvBlockStore"/>, as the <c>Store</c> setting describes; tiers of other
    /// packages, such as Redis, come from the <see cref="IKvBlockStoreTierFactory"/> services they register), the <see cref="BlockSession"/>, and the
    /// <see cref="IChatClient"/> (a <see cref="BlockAttentionChatClient"/>); a hosted service loads the
    /// model while the host starts. The settings are validated at start-up, each error naming its key.
    /// </remarks>
    public static IServiceCollection AddBlockAttention(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<BlockAttentionOptions>().Bind(configuration);
        return AddCore(services, configuration is IConfigurationSection section ? section.Path : "");
    }

    /// <summary>Registers BlockAttention with settings made by <paramref name="configure"/>; see <see cref="AddBlockAttention(IServiceCollection, IConfiguration)"/>.</summary>
    public static IServiceCollection AddBlockAttention(this IServiceCollection services, Action<BlockAttentionOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<BlockAttentionOptions>().Configure(configure);
        return AddCore(services, nameof(BlockAttentionOptions));
    }

    private static IServiceCollection AddCore(IServiceCollection services, string sectionPath)
    {
        services.AddOptions<BlockAttentionOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<BlockAttentionOptions>, BlockAttentionOptionsValidator>(
            sp => new BlockAttentionOptionsValidator(sectionPath, sp.GetServices<IKvBlockStoreTierFactory>())));

        services.TryAddSingleton(sp => BlockAttentionModelLoader.Load(
            sp.GetRequiredService<IOptions<BlockAttentionOptions>>().Value, LoggerFor(sp, "BlockAttention.Llama.LlamaModel")));
        services.TryAddSingleton<ICausalLanguageModel>(sp => sp.GetRequiredService<LlamaModel>());
        services.TryAddSingleton(sp => BlockStoreFactory.Create(
            sp.GetRequiredService<IOptions<BlockAttentionOptions>>().Value, sp.GetRequiredService<ICausalLanguageModel>().Info,
            sp.GetServices<IKvBlockStoreTierFactory>(), sp.GetService<ILoggerFactory>()));
        services.TryAddSingleton(sp => CreateSession(sp));
        services.TryAddSingleton(sp => CreateChatClient(sp));
        services.TryAddSingleton<IChatClient>(sp => sp.GetRequiredService<BlockAttentionChatClient>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ModelLoadingService>());
        return services;
    }

    private static BlockSession CreateSession(IServiceProvider services)
    {
        var options = services.GetRequiredService<IOptions<BlockAttentionOptions>>().Value;
        return new BlockSession(services.GetRequiredService<ICausalLanguageModel>(), services.GetRequiredService<IKvBlockStore>(), new BlockSessionOptions
        {
            IdleCaches = options.IdleCaches,
            MaxBatchSize = options.MaxBatchSize,
            MaxQueuedRequests = options.MaxQueuedRequests,
            PrefillChunkTokens = options.PrefillChunkTokens,
            StepThreads = options.StepThreads,
            MaxCacheBytes = options.MaxCacheBytes,
            LoggerFactory = services.GetService<ILoggerFactory>(),
            MeterFactory = services.GetService<IMeterFactory>(),
        });
    }

    private static BlockAttentionChatClient CreateChatClient(IServiceProvider services)
    {
        var options = services.GetRequiredService<IOptions<BlockAttentionOptions>>().Value;
        var session = services.GetRequiredService<BlockSession>();
        var format = string.Equals(options.ChatFormat, "auto", StringComparison.OrdinalIgnoreCase)
            ? null
            : ChatFormat.FromName(options.ChatFormat);
        return new BlockAttentionChatClient(session, new BlockAttentionChatClientOptions
        {
            ModelId = options.ModelId ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(options.Model!))),
            Format = format,
            PromptOptions = new ChatPromptOptions { AddBeginningOfText = options.AddBeginningOfText },
            DefaultMaxOutputTokens = options.DefaultMaxOutputTokens,
            DefaultMode = options.DefaultMode,
        });
    }

    private static ILogger LoggerFor(IServiceProvider services, string category) =>
        services.GetService<ILoggerFactory>()?.CreateLogger(category) ?? NullLogger.Instance;
}
