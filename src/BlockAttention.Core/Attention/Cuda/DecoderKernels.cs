using static TorchSharp.torch;

namespace BlockAttention.Attention.Cuda;

/// <summary>
/// Fused steps of a Llama-style decoder layer, one kernel launch each where libtorch needs several
/// operations (each a host call of ~10 µs, which is what bounds a short forward pass on a fast
/// GPU): RMSNorm with the residual add folded in, the rotation of the new keys with their append
/// to the request's cache, and SiLU(gate)·up. Same rounding steps as the stock operations.
/// </summary>
internal sealed unsafe class DecoderKernels
{
    private const int NormThreads = 256;
    private readonly CudaKernels _kernels;
    private readonly CudaKernels.KernelFunctions _functions;
    private readonly Tensor _inverseFrequencies;

    public DecoderKernels(CudaKernels kernels, Tensor inverseFrequencies, ScalarType dtype, int headDim)
    {
        _kernels = kernels;
        _inverseFrequencies = inverseFrequencies;
        DType = dtype;
        HeadDim = headDim;
        _functions = kernels.Functions(dtype, headDim, 64);
    }

    public ScalarType DType { get; }

    public int HeadDim { get; }

    /// <summary>
    /// <paramref name="output"/> = RMSNorm(x) · weight, rows of <paramref name="x"/> <c>[n, hidden]</c>.
    /// With <paramref name="delta"/>, x first becomes x + delta, in place.
    /// </summary>
    public void RmsNorm(Tensor x, Tensor? delta, Tensor weight, Tensor output, double eps)
    {
        Require(x, 2);
        Require(output, 2);
        Require(weight, 1);
        if (delta is not null)
        {
            Require(delta, 2);
        }

        int hidden = (int)x.shape[1];
        nint input = CudaKernels.DataPointer(x);
        nint add = delta is null ? 0 : CudaKernels.DataPointer(delta);
        nint residual = delta is null ? 0 : input;
        nint w = CudaKernels.DataPointer(weight);
        nint o = CudaKernels.DataPointer(output);
        float epsilon = (float)eps;
        void** args = stackalloc void*[] { &input, &add, &residual, &w, &o, &hidden, &epsilon };
        Launch(_functions.RmsNorm, (uint)x.shape[0], 1, NormThreads, args, "rms_norm");
    }

    /// <summary>
    /// Rotates the keys of <paramref name="qkv"/> <c>[n, heads + 2 kvHeads, headDim]</c> for
    /// positions <paramref name="position"/>.. and writes keys and values into
    /// <paramref name="cache"/>'s layer <paramref name="layer"/> at its own positions from <c>cache.Length</c>.
    /// </summary>
    public void RotateAppend(Tensor qkv, int heads, int kvHeads, KvCache cache, int layer, int position)
    {
        RequireRows(qkv);
        int n = (int)qkv.shape[0];
        RotateAppend(CudaKernels.DataPointer(qkv), n, heads, kvHeads, Target(cache, n), layer, position);
    }

    /// <summary>Checks that <paramref name="qkv"/> is a contiguous <c>[n, heads + 2 kvHeads, headDim]</c> tensor of this dtype.</summary>
    public void RequireRows(Tensor qkv) => Require(qkv, 3);

    /// <summary>
    /// Where <see cref="RotateAppend(nint, int, int, int, AppendTarget, int, int)"/> writes
    /// <paramref name="n"/> new positions of <paramref name="cache"/>: read once per forward call
    /// and used for every layer (the cache's length moves only after the call).
    /// </summary>
    public static AppendTarget Target(KvCache cache, int n)
    {
        if (cache.Length + (long)n > cache.Capacity)
        {
            throw new InvalidOperationException($"the KV cache holds {cache.Capacity} positions; {cache.Length} are used and {n} more were written");
        }

        var keys = cache.AllKeys;
        return new AppendTarget(CudaKernels.DataPointer(keys), CudaKernels.DataPointer(cache.AllValues), keys.stride(0), keys.stride(1), cache.Length);
    }

    /// <summary>
    /// As <see cref="RotateAppend(Tensor, int, int, KvCache, int, int)"/> for <paramref name="n"/>
    /// rows at device address <paramref name="qkvRows"/> of a tensor that <see cref="RequireRows"/>
    /// accepted, into <paramref name="target"/>: one kernel launch, no other host call.
    /// </summary>
    public void RotateAppend(nint qkvRows, int n, int heads, int kvHeads, AppendTarget target, int layer, int position)
    {
        nint q = qkvRows, k = target.Keys, v = target.Values;
        long layerOffset = layer * target.LayerStride, headStride = target.HeadStride;
        int own = target.Own, h = heads, kv = kvHeads, p = position;
        nint f = CudaKernels.DataPointer(_inverseFrequencies);
        void** args = stackalloc void*[] { &q, &h, &kv, &k, &v, &layerOffset, &headStride, &own, &p, &f };
        Launch(_functions.RotateAppend, (uint)n, (uint)kvHeads, (uint)(HeadDim / 2), args, "rotate_append");
    }

    /// <summary>
    /// The rows of <see cref="RotateAppendRows"/>'s table for steps of several requests: step i
    /// writes <paramref name="counts"/>[i] rows, from row <paramref name="firstRows"/>[i] of the
    /// call's qkv, at positions <paramref name="positions"/>[i].. into <paramref name="targets"/>[i].
    /// Made once per forward call and used by every layer.
    /// </summary>
    public static Tensor AppendRowTable(IReadOnlyList<AppendTarget> targets, IReadOnlyList<int> firstRows, IReadOnlyList<int> counts, IReadOnlyList<int> positions, Device device)
    {
        int rows = counts.Sum();
        var table = new long[checked(rows * 8)];
        int at = 0;
        for (int i = 0; i < targets.Count; i++)
        {
            var target = targets[i];
            for (int r = 0; r < counts[i]; r++, at += 8)
            {
                table[at] = target.Keys;
                table[at + 1] = target.Values;
                table[at + 2] = target.LayerStride;
                table[at + 3] = target.HeadStride;
                table[at + 4] = target.Own + r;
                table[at + 5] = positions[i] + r;
                table[at + 6] = firstRows[i] + r;
            }
        }

        return CudaKernels.ToDevice(table, device);
    }

    /// <summary>
    /// <see cref="RotateAppend(nint, int, int, int, AppendTarget, int, int)"/> for every row of
    /// <paramref name="rowTable"/> (made by <see cref="AppendRowTable"/>) in one launch: the same
    /// arithmetic, so each cache holds the same bits as with one launch per request.
    /// </summary>
    public void RotateAppendRows(nint qkv, Tensor rowTable, int heads, int kvHeads, int layer)
    {
        nint q = qkv, rows = CudaKernels.DataPointer(rowTable);
        int h = heads, kv = kvHeads, l = layer;
        nint f = CudaKernels.DataPointer(_inverseFrequencies);
        void** args = stackalloc void*[] { &q, &h, &kv, &rows, &l, &f };
        Launch(_functions.RotateAppendRows, (uint)(rowTable.shape[0] / 8), (uint)kvHeads, (uint)(HeadDim / 2), args, "rotate_append_rows");
    }

    /// <summary><paramref name="output"/> <c>[n, intermediate]</c> = SiLU(gate) · up of <paramref name="gateUp"/> <c>[n, 2 intermediate]</c>.</summary>
    public void SiluMul(Tensor gateUp, Tensor output)
    {
        Require(gateUp, 2);
        Require(output, 2);
        int intermediate = (int)output.shape[1];
        long total = output.NumberOfElements;
        nint g = CudaKernels.DataPointer(gateUp);
        nint o = CudaKernels.DataPointer(output);
        void** args = stackalloc void*[] { &g, &o, &intermediate, &total };
        uint blocks = (uint)Math.Min((total + 255) / 256, 4L * _kernels.Multiprocessors * 8);
        Launch(_functions.SiluMul, blocks, 1, 256, args, "silu_mul");
    }

    private void Launch(nint function, uint gridX, uint gridY, uint threads, void** args, string name)
    {
        _kernels.EnsureContext();
        CudaDriverApi.Check(CudaDriverApi.cuLaunchKernel(function, gridX, gridY, 1, threads, 1, 1, 0, 0, args, null), $"cuLaunchKernel({name})");
    }

    private void Require(Tensor tensor, int dimensions)
    {
        if (tensor.dtype != DType || tensor.ndim != dimensions || !tensor.is_contiguous())
        {
            throw new ArgumentException($"expected a contiguous {DType} tensor of {dimensions} dimensions; got {tensor.dtype} [{string.Join(", ", tensor.shape)}]");
        }
    }
}

/// <summary>A request's cache as the rotate-and-append kernel writes into it: device addresses of all layers' keys and values, their layer and head strides (elements), and the positions already held.</summary>
internal readonly record struct AppendTarget(nint Keys, nint Values, long LayerStride, long HeadStride, int Own);
