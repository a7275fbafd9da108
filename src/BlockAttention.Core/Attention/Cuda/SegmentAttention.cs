using static TorchSharp.torch;

namespace BlockAttention.Attention.Cuda;

/// <summary>
/// One run of keys and values that a block of queries attends to, used where it lies: a cached
/// block's tensors or the request's own tail cache, <c>[layers, kvHeads, positions, headDim]</c>
/// (any layer and head strides; positions contiguous).
/// </summary>
/// <param name="Keys">Keys; key j rotated for position <paramref name="KeyPosition"/> + j - <paramref name="RotationBase"/>.</param>
/// <param name="Values">Values, same shape and strides as the keys.</param>
/// <param name="Length">Positions used, from the start.</param>
/// <param name="KeyPosition">Absolute position in the prompt of key 0.</param>
/// <param name="RotationBase">How far the keys' rotation lags their absolute positions: a cached block's offset (it was encoded alone from position 0), 0 for the tail.</param>
internal readonly record struct KvSegment(Tensor Keys, Tensor Values, int Length, int KeyPosition, int RotationBase);

/// <summary>
/// Attention of a short block of queries over <see cref="KvSegment"/>s with our split-KV kernel
/// (see SegmentAttention.cu): the cached blocks are read in place, never copied or re-rotated;
/// the queries are rotated per segment instead, in float32.
/// </summary>
internal sealed class SegmentAttention : IDisposable
{
    internal const int Tile = SegmentTiling.Tile;
    private const int Threads = 256;
    private readonly CudaKernels _kernels;
    private readonly Tensor _inverseFrequencies;

    public SegmentAttention(CudaKernels kernels, IReadOnlyList<float> inverseFrequencies, int heads, int kvHeads, int headDim, ScalarType dtype, Device device)
    {
        if (heads % kvHeads != 0 || inverseFrequencies.Count * 2 != headDim)
        {
            throw new ArgumentException($"heads {heads}, KV heads {kvHeads}, head dimension {headDim} and {inverseFrequencies.Count} frequencies do not fit together");
        }

        _kernels = kernels;
        Heads = heads;
        KvHeads = kvHeads;
        HeadDim = headDim;
        DType = dtype;
        Device = device;
        _inverseFrequencies = tensor(inverseFrequencies.ToArray(), ScalarType.Float32, device);
        UseTensorCores = CudaKernels.SupportsTensorCores(dtype, headDim) && Environment.GetEnvironmentVariable("BLOCKATTENTION_CUDA_MMA") is not ("0" or "off" or "false");
    }

    public int Heads { get; }

    /// <summary>The fused decoder-layer kernels of the same compiled module.</summary>
    public DecoderKernels Decoder => _decoder ??= new DecoderKernels(_kernels, _inverseFrequencies, DType, HeadDim);

    private DecoderKernels? _decoder;

    public int KvHeads { get; }

    public int HeadDim { get; }

    public ScalarType DType { get; }

    public Device Device { get; }

    /// <summary>For tests: fill the per-chunk partial results with NaN before each launch, so that an unwritten one shows.</summary>
    internal bool PoisonPartials { get; set; }

    /// <summary>
    /// Whether bfloat16/float16 run on tensor cores (mma.sync; the default) or on the float32
    /// CUDA-core kernel that float32 uses. Off with <c>BLOCKATTENTION_CUDA_MMA=0</c>.
    /// </summary>
    internal bool UseTensorCores { get; set; }

    /// <summary>Dynamic shared memory of the tensor-core split kernel, in bytes.</summary>
    internal static int MmaSharedBytes(int headDim) =>
        (MmaRows * headDim + (MmaRows + 4 * Tile) * (headDim + 8)) * sizeof(ushort) + MmaRows * sizeof(int);

    private const int MmaRows = 64;
    private const uint CombineThreads = 128;
    private const int MmaThreads = 128;

    /// <summary>Dynamic shared memory of the split kernel, in bytes.</summary>
    internal static int SharedBytes(int headDim, int rows) =>
        ((rows + Tile) * (headDim + 4) + rows * (Tile + 4) + 4 * rows) * sizeof(float);

    /// <summary>
    /// Plans one forward call: <paramref name="queries"/> query rows at absolute positions
    /// <paramref name="queryPosition"/>.., over <paramref name="segments"/> in prompt order. The
    /// plan is reused by every layer of the call.
    /// </summary>
    public SegmentPlan Plan(IReadOnlyList<KvSegment> segments, int queries, int queryPosition)
    {
        ArgumentNullException.ThrowIfNull(segments);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(queries);
        int group = Heads / KvHeads;
        int rowsFolded = checked(group * queries);
        bool mma = UseTensorCores && CudaKernels.SupportsTensorCores(DType, HeadDim);
        int rows = mma || rowsFolded > 16 || HeadDim < 16 ? 64 : 16;
        int rowTiles = (rowsFolded + rows - 1) / rows;

        for (int s = 0; s < segments.Count; s++)
        {
            Validate(segments[s], s);
        }

        var (tiles, chunkStarts) = SegmentTiling.Plan([.. segments.Select(segment => segment.Length)], KvHeads, rowTiles, _kernels.Multiprocessors);
        int chunks = chunkStarts.Length - 1;

        // One int32 table: segments (16 ints each, 8 int64), tiles (4 ints each), chunk starts.
        int segmentInts = segments.Count * 16, tileInts = tiles.Count * 4;
        var table = new int[segmentInts + tileInts + chunks + 1];
        var longs = new long[segments.Count * 8];
        for (int s = 0; s < segments.Count; s++)
        {
            var segment = segments[s];
            longs[s * 8 + 0] = CudaKernels.DataPointer(segment.Keys);
            longs[s * 8 + 1] = CudaKernels.DataPointer(segment.Values);
            longs[s * 8 + 2] = segment.Keys.stride(0);
            longs[s * 8 + 3] = segment.Keys.stride(1);
            longs[s * 8 + 4] = segment.Length;
            longs[s * 8 + 5] = segment.KeyPosition;
            longs[s * 8 + 6] = segment.RotationBase;
        }

        Buffer.BlockCopy(longs, 0, table, 0, segmentInts * sizeof(int));
        for (int t = 0; t < tiles.Count; t++)
        {
            table[segmentInts + t * 4 + 0] = tiles[t].Segment;
            table[segmentInts + t * 4 + 1] = tiles[t].Start;
            table[segmentInts + t * 4 + 2] = tiles[t].Count;
        }

        chunkStarts.CopyTo(table, segmentInts + tileInts);

        using var host = tensor(table, ScalarType.Int32);
        using var pinned = host.pin_memory();
        var deviceTable = pinned.to(Device, non_blocking: true);
        var partialOut = empty([chunks, KvHeads, rowsFolded, HeadDim], ScalarType.Float32, Device);
        var partialStats = empty([2, chunks, KvHeads, rowsFolded], ScalarType.Float32, Device);
        return new SegmentPlan(this, segments, deviceTable, segmentInts, tileInts, chunks, rows, rowTiles, queries, queryPosition, partialOut, partialStats) { TensorCores = mma };
    }

    /// <summary>Runs the kernels for one layer: <paramref name="queries"/> <c>[n, ≥heads, headDim]</c> (unrotated) into <paramref name="output"/> <c>[n, heads * headDim]</c>.</summary>
    internal unsafe void Run(SegmentPlan plan, Tensor queries, int layer, Tensor output)
    {
        if (queries.dtype != DType || output.dtype != DType || queries.ndim != 3 || queries.shape[0] != plan.Queries
            || queries.shape[1] < Heads || queries.shape[2] != HeadDim || queries.stride(2) != 1 || queries.stride(1) != HeadDim)
        {
            throw new ArgumentException($"queries must be {DType} [{plan.Queries}, >= {Heads}, {HeadDim}] with contiguous heads; got {queries.dtype} [{string.Join(", ", queries.shape)}]");
        }

        if (!output.is_contiguous() || output.shape[0] != plan.Queries || output.shape[1] != (long)Heads * HeadDim)
        {
            throw new ArgumentException($"the output must be contiguous [{plan.Queries}, {Heads * HeadDim}]");
        }

        if (PoisonPartials)
        {
            plan.PartialOut.fill_(Runtime.Scalars.NaN);
            plan.PartialStats.fill_(Runtime.Scalars.NaN);
        }

        var functions = _kernels.Functions(DType, HeadDim, plan.Rows);
        nint combine = functions.Combine;
        _kernels.EnsureContext();
        nint tableAddress = CudaKernels.DataPointer(plan.Table);
        nint q = CudaKernels.DataPointer(queries);
        long queryRowStride = queries.stride(0);
        int n = plan.Queries, group = Heads / KvHeads, kvHeads = KvHeads, queryPosition = plan.QueryPosition;
        nint segments = tableAddress;
        nint tiles = tableAddress + plan.SegmentInts * sizeof(int);
        nint chunkStarts = tiles + plan.TileInts * sizeof(int);
        nint frequencies = CudaKernels.DataPointer(_inverseFrequencies);
        float scaleLog2 = (float)(1.0 / Math.Sqrt(HeadDim) * 1.4426950408889634);
        nint partialOut = CudaKernels.DataPointer(plan.PartialOut);
        nint partialMax = CudaKernels.DataPointer(plan.PartialStats);
        nint partialSum = partialMax + plan.Chunks * KvHeads * group * n * sizeof(float);
        int layerIndex = layer;

        void** splitArgs = stackalloc void*[]
        {
            &q, &queryRowStride, &n, &group, &kvHeads, &queryPosition, &segments, &tiles, &chunkStarts,
            &frequencies, &scaleLog2, &layerIndex, &partialOut, &partialMax, &partialSum,
        };
        // Grid: row tiles fastest, so the blocks that read one K/V chunk run side by side.
        bool mma = plan.TensorCores;
        CudaDriverApi.Check(CudaDriverApi.cuLaunchKernel(mma ? functions.SplitMma : functions.Split, (uint)plan.RowTiles, (uint)plan.Chunks, (uint)KvHeads,
            (uint)(mma ? MmaThreads : Threads), 1, 1, (uint)(mma ? MmaSharedBytes(HeadDim) : SharedBytes(HeadDim, plan.Rows)), 0, splitArgs, null),
            "cuLaunchKernel(segment_attention_split)");

        int chunks = plan.Chunks;
        nint outputAddress = CudaKernels.DataPointer(output);
        void** combineArgs = stackalloc void*[]
        {
            &partialOut, &partialMax, &partialSum, &chunks, &n, &group, &kvHeads, &outputAddress,
        };
        CudaDriverApi.Check(CudaDriverApi.cuLaunchKernel(combine, (uint)(n * Heads), 1, 1, CombineThreads, 1, 1, (uint)(chunks * sizeof(float)), 0, combineArgs, null),
            "cuLaunchKernel(segment_attention_combine)");
    }

    private void Validate(KvSegment segment, int index)
    {
        var keys = segment.Keys;
        var values = segment.Values;
        if (keys.dtype != DType || values.dtype != DType || keys.ndim != 4 || !keys.shape.SequenceEqual(values.shape)
            || keys.shape[1] != KvHeads || keys.shape[3] != HeadDim || keys.stride(3) != 1 || keys.stride(2) != HeadDim
            || !keys.stride().SequenceEqual(values.stride()) || keys.device_type != Device.type)
        {
            throw new ArgumentException($"segment {index}: keys/values must be {DType} [layers, {KvHeads}, positions, {HeadDim}] on {Device} with contiguous positions and equal strides");
        }

        if (segment.Length < 0 || segment.Length > keys.shape[2] || segment.KeyPosition < 0)
        {
            throw new ArgumentException($"segment {index}: length {segment.Length} at position {segment.KeyPosition} does not fit its {keys.shape[2]} positions");
        }
    }

    public void Dispose() => _inverseFrequencies.Dispose();
}

/// <summary>
/// One forward call's segment table on the device and its scratch buffers, shared by every layer.
/// Holds the segments' tensors only by address: the caller keeps them alive until the call's work
/// is queued (the stream runs it in order, so freed memory is not reused before it has run).
/// </summary>
internal sealed class SegmentPlan(SegmentAttention owner, IReadOnlyList<KvSegment> segments, Tensor table, int segmentInts, int tileInts,
    int chunks, int rows, int rowTiles, int queries, int queryPosition, Tensor partialOut, Tensor partialStats) : IDisposable
{
    public IReadOnlyList<KvSegment> Segments { get; } = segments;

    public Tensor Table { get; } = table;

    public int SegmentInts { get; } = segmentInts;

    public int TileInts { get; } = tileInts;

    public int Chunks { get; } = chunks;

    public int Rows { get; } = rows;

    public int RowTiles { get; } = rowTiles;

    public int Queries { get; } = queries;

    public int QueryPosition { get; } = queryPosition;

    /// <summary>Whether the tensor-core split kernel runs (rows are then always 64 per block).</summary>
    public bool TensorCores { get; init; }

    public Tensor PartialOut { get; } = partialOut;

    public Tensor PartialStats { get; } = partialStats;

    /// <summary>Attention of one layer: see <see cref="SegmentAttention.Run"/>.</summary>
    public void Attend(Tensor queries, int layer, Tensor output) => owner.Run(this, queries, layer, output);

    public void Dispose()
    {
        Table.Dispose();
        PartialOut.Dispose();
        PartialStats.Dispose();
    }
}
