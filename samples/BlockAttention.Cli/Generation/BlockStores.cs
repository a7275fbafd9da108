using BlockAttention.Caching;

namespace BlockAttention.Cli.Generation;

/// <summary>The block store <c>generate</c> runs with, so that repeated runs of a prompt reuse its encoded passages.</summary>
internal static class BlockStores
{
    /// <summary>The store and its name for reports; a null store encodes every block on every run.</summary>
    // TODO(store): return a MemoryKvBlockStore (being added in src/BlockAttention.Core/Caching) once it
    // is on this branch, named "memory"; until then runs share nothing and every block is encoded.
    public static (IKvBlockStore? Store, string Name) Create() => (null, "none");
}
