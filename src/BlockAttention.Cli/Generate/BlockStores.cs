using BlockAttention.Caching;

namespace BlockAttention.Cli.Generate;

/// <summary>The block store <c>generate</c> runs with, so that repeated runs of a prompt reuse its encoded passages.</summary>
internal static class BlockStores
{
    /// <summary>
    /// Room for the passages of one CLI session with some to spare: a 500-token block of an 8B
    /// Llama in bfloat16 is about 64 MiB, so this holds about 30 of them before evicting.
    /// </summary>
    public const long MaxBytes = 2L << 30;

    /// <summary>The store and its name for reports. The caller disposes the store.</summary>
    public static (MemoryKvBlockStore Store, string Name) Create() =>
        (new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = MaxBytes }), "memory");
}
