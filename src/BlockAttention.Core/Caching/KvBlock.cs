using BlockAttention.Models;
using static TorchSharp.torch;

namespace BlockAttention.Caching;

/// <summary>
/// The encoded states of one local block: every layer's keys (rotated for positions
/// <c>0..n-1</c>) and values, <c>[layers, kvHeads, n, headDim]</c>, and the token ids they encode.
/// </summary>
/// <remarks>
/// A block is shared by the store and by every request reading it, so its tensors are reference
/// counted: the creator holds the first reference, <see cref="TryAcquire"/> adds one,
/// <see cref="Release"/> drops one, and the tensors are freed when the last is dropped. An
/// eviction therefore never frees tensors that a request is still reading.
/// </remarks>
public sealed class KvBlock
{
    private readonly Tensor _keys;
    private readonly Tensor _values;
    private readonly int[] _tokens;
    private int _references = 1;

    /// <summary>Takes ownership of <paramref name="keys"/> and <paramref name="values"/>; the caller holds the first reference.</summary>
    public KvBlock(BlockKey key, ReadOnlySpan<int> tokens, Tensor keys, Tensor values)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(values);
        if (keys.ndim != 4 || !keys.shape.SequenceEqual(values.shape) || keys.shape[2] != tokens.Length || key.TokenCount != tokens.Length)
        {
            throw new ArgumentException(
                $"keys [{string.Join(", ", keys.shape)}] and values [{string.Join(", ", values.shape)}] must both be [layers, kvHeads, {tokens.Length}, headDim] for {tokens.Length} tokens");
        }

        Key = key;
        _tokens = tokens.ToArray();
        _keys = keys;
        _values = values;
        SizeInBytes = 2 * keys.NumberOfElements * keys.ElementSize;
    }

    /// <summary>
    /// Encodes <paramref name="tokens"/> alone at positions <c>0..n-1</c> (causal attention, empty
    /// cache) and returns its states as a block whose first reference the caller holds. Not
    /// synchronised: a caller sharing the model between threads serialises its use (as
    /// <see cref="BlockSession"/> does).
    /// </summary>
    /// <exception cref="ArgumentException">There are no tokens, or they do not fit the model.</exception>
    public static KvBlock Encode(ICausalLanguageModel model, ReadOnlySpan<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(model);
        var scratch = model.CreateCache(Math.Max(1, tokens.Length));
        try
        {
            model.Forward(tokens, scratch, logitsToKeep: 0);
        }
        catch
        {
            scratch.Dispose();
            throw;
        }

        // The scratch cache's buffers become the block's tensors: no copy.
        var (keys, values) = scratch.TakeBuffers();
        return new KvBlock(BlockKey.For(model.Info.Fingerprint, tokens), tokens, keys, values);
    }

    /// <summary>The block's key.</summary>
    public BlockKey Key { get; }

    /// <summary>The token ids these states encode (compared on lookup, so a hash collision is never served).</summary>
    public ReadOnlySpan<int> Tokens => _tokens;

    /// <summary>Number of tokens.</summary>
    public int Length => _tokens.Length;

    /// <summary>Bytes held by the key and value tensors, exactly.</summary>
    public long SizeInBytes { get; }

    /// <summary>Keys <c>[layers, kvHeads, n, headDim]</c>, rotated for positions 0..n-1. Valid while a reference is held.</summary>
    public Tensor Keys => IsAlive ? _keys : throw new ObjectDisposedException(nameof(KvBlock), "this block's tensors were freed");

    /// <summary>Values <c>[layers, kvHeads, n, headDim]</c>. Valid while a reference is held.</summary>
    public Tensor Values => IsAlive ? _values : throw new ObjectDisposedException(nameof(KvBlock), "this block's tensors were freed");

    /// <summary>False once the last reference was released and the tensors freed.</summary>
    public bool IsAlive => Volatile.Read(ref _references) > 0;

    /// <summary>True when <paramref name="tokens"/> are exactly this block's tokens.</summary>
    public bool Encodes(ReadOnlySpan<int> tokens) => tokens.SequenceEqual(_tokens);

    /// <summary>Adds a reference, unless the block was already freed (then returns false).</summary>
    public bool TryAcquire()
    {
        int current = Volatile.Read(ref _references);
        while (current > 0)
        {
            int seen = Interlocked.CompareExchange(ref _references, current + 1, current);
            if (seen == current)
            {
                return true;
            }

            current = seen;
        }

        return false;
    }

    /// <summary>Drops a reference; the last one frees the tensors.</summary>
    public void Release()
    {
        int remaining = Interlocked.Decrement(ref _references);
        if (remaining == 0)
        {
            _keys.Dispose();
            _values.Dispose();
        }
        else if (remaining < 0)
        {
            throw new InvalidOperationException($"block {Key} was released more often than acquired");
        }
    }
}
