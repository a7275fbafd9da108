using BlockAttention.Caching;
using BlockAttention.Models;

namespace BlockAttention.Hosting;

/// <summary>Turns the <see cref="BlockAttentionOptions.Store"/> spec into a block store.</summary>
internal static class BlockStoreFactory
{
    /// <summary>Null when <paramref name="spec"/> names a store this build provides, else why not.</summary>
    public static string? Validate(string? spec) => spec?.Trim().ToLowerInvariant() switch
    {
        "memory" => null,
        _ => $"'{spec}' is not a store this version provides; use memory",
    };

    /// <summary>The store for <paramref name="options"/>, sized for <paramref name="model"/>.</summary>
    public static IKvBlockStore Create(BlockAttentionOptions options, ModelInfo model)
    {
        long maxBytes = options.StoreMaxBytes
            ?? (options.StoreMaxTokens is long tokens ? checked(tokens * model.KvBytesPerToken) : BlockAttentionOptions.DefaultStoreMaxBytes);
        return options.Store.Trim().ToLowerInvariant() switch
        {
            "memory" => new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = maxBytes }),
            _ => throw new InvalidOperationException(Validate(options.Store)),
        };
    }
}
