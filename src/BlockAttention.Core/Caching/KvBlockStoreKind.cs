namespace BlockAttention.Caching;

/// <summary>The kinds of block store a <see cref="KvBlockStoreSpec"/> names.</summary>
public enum KvBlockStoreKind
{
    /// <summary>In-process memory (<see cref="MemoryKvBlockStore"/>), on the model's device.</summary>
    Memory,

    /// <summary>One file per block under a directory (<see cref="Persistence.FileKvBlockStore"/>).</summary>
    File,

    /// <summary>A Redis server (<c>RedisKvBlockStore</c> in the BlockAttention.Redis package).</summary>
    Redis,
}
