using static TorchSharp.torch;

namespace BlockAttention.Attention;

/// <summary>
/// A preallocated key/value cache for one sequence: per layer, keys and values of shape
/// <c>[kvHeads, capacity, headDim]</c>, written in place by position and never grown by
/// concatenation. The cache is passed to the model on every step; the model does not own it.
/// </summary>
/// <remarks>
/// All layers live in two tensors, <c>[layers, kvHeads, capacity, headDim]</c>, so that
/// Block-Attention can write a cached block's states for every layer in one operation.
/// </remarks>
public sealed class KvCache : IDisposable
{
    private readonly Tensor _keys;
    private readonly Tensor _values;
    private readonly Tensor[] _layerKeys;
    private readonly Tensor[] _layerValues;
    private bool _disposed;

    /// <summary>Allocates an empty cache (uninitialised memory; only positions below <see cref="Length"/> are meaningful).</summary>
    public KvCache(int layers, int kvHeads, int headDim, int capacity, ScalarType dtype, Device device)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(layers);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(headDim);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _keys = empty([layers, kvHeads, capacity, headDim], dtype, device);
        _values = empty([layers, kvHeads, capacity, headDim], dtype, device);
        // Per-layer views made once: each step then costs two narrows and two copies per layer.
        _layerKeys = [.. Enumerable.Range(0, layers).Select(i => _keys[i])];
        _layerValues = [.. Enumerable.Range(0, layers).Select(i => _values[i])];
        Layers = layers;
        Capacity = capacity;
    }

    /// <summary>Number of layers.</summary>
    public int Layers { get; }

    /// <summary>The most positions this cache can hold.</summary>
    public int Capacity { get; }

    /// <summary>The cache's own positions <c>0..Length-1</c> hold valid keys and values (after <see cref="PrefixLength"/> positions of prefix, if any).</summary>
    public int Length { get; private set; }

    /// <summary>Cached blocks read in place before this cache's own positions, or null.</summary>
    public KvPrefix? Prefix { get; private set; }

    /// <summary>Positions held by <see cref="Prefix"/> (0 without one): own position i is prompt position <c>PrefixLength + i</c>.</summary>
    public int PrefixLength => Prefix?.Positions ?? 0;

    /// <summary>The storage dtype.</summary>
    public ScalarType DType => _keys.dtype;

    /// <summary>The device the cache lives on.</summary>
    public Device Device => _keys.device;

    /// <summary>Bytes of cache memory allocated (keys and values, whole capacity).</summary>
    public long AllocatedBytes => 2 * _keys.NumberOfElements * _keys.ElementSize;

    /// <summary>All layers' key buffer, <c>[layers, kvHeads, capacity, headDim]</c>.</summary>
    public Tensor AllKeys => _keys;

    /// <summary>All layers' value buffer, <c>[layers, kvHeads, capacity, headDim]</c>.</summary>
    public Tensor AllValues => _values;

    /// <summary>
    /// Writes <paramref name="keys"/> and <paramref name="values"/> (<c>[kvHeads, n, headDim]</c>)
    /// of one layer at positions <c>Length .. Length+n-1</c>, and returns views of that layer's
    /// keys and values for positions <c>0 .. Length+n-1</c>. <see cref="Length"/> itself moves only
    /// with <see cref="Advance"/>, once every layer has been written.
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor keys, Tensor values)
    {
        long count = keys.shape[1];
        EnsureRoom(count);
        using (var keySlot = _layerKeys[layer].narrow(1, Length, count))
        using (var valueSlot = _layerValues[layer].narrow(1, Length, count))
        {
            keySlot.copy_(keys);
            valueSlot.copy_(values);
        }

        return (_layerKeys[layer].narrow(1, 0, Length + count), _layerValues[layer].narrow(1, 0, Length + count));
    }

    /// <summary>
    /// Makes <paramref name="prefix"/>'s blocks the positions before this (empty) cache's own; the
    /// cache disposes the prefix when it is detached, emptied by <see cref="Truncate"/> to 0, or disposed.
    /// </summary>
    public void AttachPrefix(KvPrefix prefix)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Length != 0 || Prefix is not null)
        {
            throw new InvalidOperationException($"a prefix can only be attached to an empty cache without one (length {Length})");
        }

        Prefix = prefix;
    }

    /// <summary>Drops the prefix, if any, releasing its blocks.</summary>
    public void DetachPrefix()
    {
        var prefix = Prefix;
        Prefix = null;
        prefix?.Dispose();
    }

    /// <summary>Marks <paramref name="count"/> more positions as valid.</summary>
    public void Advance(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        EnsureRoom(count);
        Length += count;
    }

    /// <summary>Forgets everything after <paramref name="length"/> (e.g. to reuse an assembled prefix).</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        Length = length;
        if (length == 0)
        {
            DetachPrefix();
        }
    }

    /// <summary>
    /// Views of all layers' keys and values for positions <c>start .. start+count-1</c>,
    /// <c>[layers, kvHeads, count, headDim]</c>: the place where an assembled block is written.
    /// </summary>
    public (Tensor Keys, Tensor Values) Slot(int start, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        if (start + (long)count > Capacity)
        {
            throw new InvalidOperationException($"positions {start}..{start + count - 1} exceed the cache capacity {Capacity}");
        }

        return (_keys.narrow(2, start, count), _values.narrow(2, start, count));
    }

    /// <summary>
    /// Hands the key and value buffers to the caller, who then owns them; the cache is left
    /// disposed. Used to keep an encoded block's states without copying them.
    /// </summary>
    internal (Tensor Keys, Tensor Values) TakeBuffers()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _disposed = true;
        DisposeLayerViews();
        return (_keys, _values);
    }

    /// <summary>Releases the cache's memory.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        DetachPrefix();
        DisposeLayerViews();
        _keys.Dispose();
        _values.Dispose();
    }

    private void DisposeLayerViews()
    {
        foreach (var view in _layerKeys.Concat(_layerValues))
        {
            view.Dispose();
        }
    }

    private void EnsureRoom(long count)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Length + count > Capacity)
        {
            throw new InvalidOperationException($"the KV cache holds {Capacity} positions; {Length} are used and {count} more were written");
        }
    }
}
