using BlockAttention.Caching;

namespace BlockAttention.Attention;

/// <summary>
/// Cached blocks that a request's <see cref="KvCache"/> continues, read where the store keeps
/// them: the cache's own positions follow them, so nothing is copied or re-rotated per request.
/// Holds a reference on each block (so an eviction cannot free one in use) until disposed.
/// </summary>
/// <remarks>
/// Only models that read blocks in place (<see cref="Models.IKvPrefixAttention"/>) accept a
/// cache with a prefix; the others take the blocks assembled into the cache instead.
/// </remarks>
public sealed class KvPrefix : IDisposable
{
    private readonly KvBlock[] _blocks;
    private readonly int[] _offsets;
    private int _disposed;

    private KvPrefix(KvBlock[] blocks)
    {
        _blocks = blocks;
        _offsets = new int[blocks.Length];
        long position = 0;
        for (int i = 0; i < blocks.Length; i++)
        {
            _offsets[i] = (int)position;
            position += blocks[i].Length;
        }

        Positions = checked((int)position);
    }

    /// <summary>The blocks, in prompt order.</summary>
    public IReadOnlyList<KvBlock> Blocks => _blocks;

    /// <summary>Positions the blocks cover together: the cache's own positions start here.</summary>
    public int Positions { get; }

    /// <summary>The prompt position of block <paramref name="index"/>'s first token.</summary>
    public int OffsetOf(int index) => _offsets[index];

    /// <summary>Takes a reference on each of <paramref name="blocks"/> (the caller keeps its own).</summary>
    /// <exception cref="ObjectDisposedException">A block was already freed.</exception>
    public static KvPrefix Acquire(IReadOnlyList<KvBlock> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        var held = new List<KvBlock>(blocks.Count);
        foreach (var block in blocks)
        {
            if (!block.TryAcquire())
            {
                held.ForEach(b => b.Release());
                throw new ObjectDisposedException(nameof(KvBlock), $"block {block.Key} was freed before it could be used");
            }

            held.Add(block);
        }

        return new KvPrefix([.. held]);
    }

    /// <summary>Drops the references taken by <see cref="Acquire"/>.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            foreach (var block in _blocks)
            {
                block.Release();
            }
        }
    }
}
