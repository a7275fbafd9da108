using BlockAttention.Attention;
using BlockAttention.Attention.Cuda;
using BlockAttention.Models;
using BlockAttention.Text;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BlockAttention.Llama;

/// <summary>
/// A Llama-family causal language model (Llama 2, Llama 3.x, Tulu 3, SmolLM2) running on
/// TorchSharp: embedding, decoder layers, final norm and LM head. Immutable once loaded, so one
/// instance serves concurrent requests, each with its own <see cref="KvCache"/>.
/// </summary>
public sealed partial class LlamaModel : ICausalLanguageModel, IKvPrefixAttention
{
    private readonly LlamaShape _shape;
    private readonly Tensor _embedding;
    private readonly LlamaDecoderLayer[] _layers;
    private readonly Tensor _finalNorm;
    private readonly Tensor _lmHead;
    private readonly bool _tiedLmHead;
    private readonly bool _matmulAttention;
    private readonly SegmentAttention? _segmentAttention;

    // Forward calls in flight, and whether Dispose was called: Dispose marks the model disposed
    // (new calls throw ObjectDisposedException) and frees the weights once the calls in flight
    // are done, so a concurrent Dispose never frees a tensor a forward pass is reading.
    private readonly object _lifetime = new();
    private int _forwardsInFlight;
    private bool _disposed;
    private long _peakMaskElements;

    private LlamaModel(LlamaShape shape, Tensor embedding, LlamaDecoderLayer[] layers, Tensor finalNorm, Tensor? lmHead,
        RotaryEmbedding rotary, ITextTokenizer? tokenizer, ModelInfo info, AttentionImplementation attention)
    {
        _matmulAttention = UsesMatmulAttention(attention, info.Device);
        _shape = shape;
        _embedding = embedding;
        _layers = layers;
        _finalNorm = finalNorm;
        _tiedLmHead = lmHead is null;
        _lmHead = lmHead ?? embedding;
        Rotary = rotary;
        Tokenizer = tokenizer;
        Info = info;
        _segmentAttention = CreateSegmentAttention(shape, rotary, info);
    }

    /// <inheritdoc />
    public ModelInfo Info { get; }

    /// <inheritdoc />
    public RotaryEmbedding Rotary { get; }

    /// <inheritdoc />
    public ITextTokenizer? Tokenizer { get; }

    /// <summary>True on CUDA where BlockAttention's kernels compiled: cached blocks are then read in place.</summary>
    public bool CanAttendKvPrefix => _segmentAttention is not null;

    /// <summary>
    /// The most attention scores (heads x query rows x key positions) one step of attention may
    /// cover; longer calls attend in chunks of query rows, with the same result. Bounds the mask
    /// and, in the matmul form, the score matrix (2^27: 256 MB in bfloat16). Settable for tests.
    /// </summary>
    internal long AttentionScoreBudget { get; set; } = 1L << 27;

    /// <summary>The most elements of any attention mask a forward call of this model held so far (for tests).</summary>
    internal long PeakMaskElements => Interlocked.Read(ref _peakMaskElements);

    /// <inheritdoc />
    /// <exception cref="ObjectDisposedException">The model was disposed.</exception>
    public KvCache CreateCache(int capacity)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
        return new(_shape.Layers, _shape.KvHeads, _shape.HeadDim, capacity, Info.DType, Info.Device);
    }

    /// <inheritdoc />
    /// <remarks>Thread-safe: calls may run concurrently, each with its own cache.</remarks>
    /// <exception cref="ObjectDisposedException">The model was disposed (before the call; a call in flight completes).</exception>
    public Tensor? Forward(ReadOnlySpan<int> tokens, KvCache cache, int logitsToKeep = 1, Tensor? attentionMask = null)
    {
        BeginForward();
        try
        {
            return ForwardCore(tokens, cache, logitsToKeep, attentionMask);
        }
        finally
        {
            EndForward();
        }
    }

    /// <summary>Counts a forward call in, unless the model is disposed.</summary>
    private void BeginForward()
    {
        lock (_lifetime)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _forwardsInFlight++;
        }
    }

    /// <summary>Counts a forward call out, waking a <see cref="Dispose"/> waiting for the last one.</summary>
    private void EndForward()
    {
        lock (_lifetime)
        {
            if (--_forwardsInFlight == 0 && _disposed)
            {
                Monitor.PulseAll(_lifetime);
            }
        }
    }

    private Tensor? ForwardCore(ReadOnlySpan<int> tokens, KvCache cache, int logitsToKeep, Tensor? attentionMask)
    {
        int start = ValidateStep(tokens, cache, logitsToKeep, attentionMask);
        int count = tokens.Length;
        if (cache.Prefix is not null && s_fusedLayers)
        {
            return ForwardInPlace(tokens, cache, logitsToKeep, start);
        }

        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var ids = TokenTensor(tokens);
        var x = _embedding.index_select(0, ids);
        // The forward pass rotates in the model's dtype from float32 angles, as transformers does
        // (in bf16 a float32 rotation of 32K tokens' queries and keys cost ~20 ms more per prefill).
        using var angles = Rotary.Angles(start, count, Info.Device, Info.DType);
        using var segments = cache.Prefix is null ? null : _segmentAttention!.Plan(Segments(cache, count), count, start);
        using var plan = segments is null ? AttentionPlan.Create(_shape, start, count, attentionMask, Info.DType, Info.Device, _matmulAttention, AttentionScoreBudget) : null;
        RecordMask(plan?.MaskElements ?? 0);
        for (int i = 0; i < _layers.Length; i++)
        {
            var next = _layers[i].Forward(x, i, cache, angles, plan, segments);
            x.Dispose(); // keep one layer's residual alive at a time, not all of them
            x = next;
        }

        cache.Advance(count);
        return LastLogits(x, count, logitsToKeep);
    }

    /// <summary>
    /// The float32 logits of the last <paramref name="logitsToKeep"/> of the <paramref name="count"/>
    /// rows of the residual stream <paramref name="x"/> (null for none), moved out of the caller's
    /// dispose scope; the intermediates stay in it.
    /// </summary>
    private Tensor? LastLogits(Tensor x, int count, int logitsToKeep)
    {
        if (logitsToKeep == 0)
        {
            return null;
        }

        var last = x.narrow(0, count - logitsToKeep, logitsToKeep);
        var logits = F.linear(RmsNorm.Apply(last, _finalNorm, _shape.RmsNormEps), _lmHead);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Checks one sequence's step against its cache and the model; returns the position of its first token.</summary>
    private int ValidateStep(ReadOnlySpan<int> tokens, KvCache cache, int logitsToKeep, Tensor? attentionMask)
    {
        ArgumentNullException.ThrowIfNull(cache);
        int count = tokens.Length;
        if (count == 0)
        {
            throw new ArgumentException("at least one token is needed", nameof(tokens));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(logitsToKeep);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(logitsToKeep, count);
        if (cache.Layers != _shape.Layers || cache.DType != Info.DType)
        {
            throw new ArgumentException($"the cache ({cache.Layers} layers, {cache.DType}) was not made for this model ({_shape.Layers} layers, {Info.DType})", nameof(cache));
        }

        int start = cache.PrefixLength + cache.Length;
        if (cache.Prefix is not null && (_segmentAttention is null || attentionMask is not null))
        {
            throw new ArgumentException(_segmentAttention is null
                ? "this model cannot read cached blocks in place (CanAttendKvPrefix is false): assemble them into the cache instead"
                : "a cache with a prefix takes no attention mask", nameof(cache));
        }

        long end = (long)start + count;
        if (end > Info.MaxPositions)
        {
            throw new ArgumentException($"positions up to {end} exceed the model's maximum of {Info.MaxPositions}", nameof(tokens));
        }

        if ((long)cache.Length + count > cache.Capacity)
        {
            throw new ArgumentException($"the cache holds {cache.Capacity} positions; {cache.Length} are used and {count} more were given", nameof(cache));
        }

        ValidateTokenIds(tokens);
        return start;
    }

    /// <summary>
    /// Releases the weights. Forward calls in flight on other threads complete first (this waits
    /// for them); later calls throw <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Dispose()
    {
        lock (_lifetime)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            while (_forwardsInFlight > 0)
            {
                Monitor.Wait(_lifetime);
            }
        }

        foreach (var layer in _layers)
        {
            layer.Dispose();
        }

        _embedding.Dispose();
        _finalNorm.Dispose();
        if (!_tiedLmHead)
        {
            _lmHead.Dispose();
        }

        Rotary.Dispose();
        _segmentAttention?.Dispose();
    }

    /// <summary>The kernels' view of a cache with a prefix: each cached block in place, then the cache's own positions including <paramref name="count"/> new ones.</summary>
    private static List<KvSegment> Segments(KvCache cache, int count)
    {
        var prefix = cache.Prefix!;
        var segments = new List<KvSegment>(prefix.Blocks.Count + 1);
        for (int b = 0; b < prefix.Blocks.Count; b++)
        {
            var block = prefix.Blocks[b];
            int offset = prefix.OffsetOf(b);
            segments.Add(new KvSegment(block.Keys, block.Values, block.Length, offset, RotationBase: offset));
        }

        segments.Add(new KvSegment(cache.AllKeys, cache.AllValues, cache.Length + count, prefix.Positions, RotationBase: 0));
        return segments;
    }

    private static SegmentAttention? CreateSegmentAttention(LlamaShape shape, RotaryEmbedding rotary, ModelInfo info)
    {
        var kernels = CudaKernels.TryGet(info.Device, info.DType, shape.HeadDim);
        return kernels is null ? null
            : new SegmentAttention(kernels, rotary.InverseFrequencies, shape.Heads, shape.KvHeads, shape.HeadDim, info.DType, info.Device);
    }

    private void RecordMask(long elements)
    {
        long peak = Interlocked.Read(ref _peakMaskElements);
        while (elements > peak)
        {
            long seen = Interlocked.CompareExchange(ref _peakMaskElements, elements, peak);
            if (seen == peak)
            {
                break;
            }

            peak = seen;
        }
    }

    private Tensor TokenTensor(ReadOnlySpan<int> tokens)
    {
        var ids = new long[tokens.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = tokens[i];
        }

        if (Info.Device.type != TorchSharp.DeviceType.CUDA)
        {
            return tensor(ids, ScalarType.Int64, Info.Device);
        }

        // A copy from pageable memory waits for all queued GPU work; from pinned memory with
        // non_blocking it does not, so the host can enqueue this forward while the GPU is still
        // busy (with the block assembly, say). libtorch's pinned allocator keeps the buffer
        // until the copy has run, so disposing our handles at once is safe.
        using var host = tensor(ids, ScalarType.Int64);
        using var pinned = host.pin_memory();
        return pinned.to(Info.Device, non_blocking: true);
    }

    private void ValidateTokenIds(ReadOnlySpan<int> tokens)
    {
        for (int i = 0; i < tokens.Length; i++)
        {
            if ((uint)tokens[i] >= (uint)_shape.Vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[i]} at index {i} is outside the vocabulary (0..{_shape.Vocab - 1})");
            }
        }
    }

    /// <summary>Which formulation <paramref name="attention"/> resolves to on <paramref name="device"/>.</summary>
    private static bool UsesMatmulAttention(AttentionImplementation attention, Device device) =>
        attention == AttentionImplementation.Matmul
        || (attention == AttentionImplementation.Auto && device.type == TorchSharp.DeviceType.CUDA);
}
