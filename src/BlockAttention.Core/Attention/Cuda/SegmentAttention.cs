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
        UseDecodeKernel = Environment.GetEnvironmentVariable("BLOCKATTENTION_CUDA_DECODE") is "1" or "on" or "true";
        DecodeDeep = Environment.GetEnvironmentVariable("BLOCKATTENTION_CUDA_DECODE_DEEP") is "1" or "on" or "true";
        DecodeTile = PositiveSetting("BLOCKATTENTION_CUDA_DECODE_TILE", DecodeTiling.Tile);
        DecodeBlocksPerMultiprocessor = PositiveSetting("BLOCKATTENTION_CUDA_DECODE_BLOCKS", 8);
        UseSharedDecode = Environment.GetEnvironmentVariable("BLOCKATTENTION_CUDA_SHARED") is not ("0" or "off" or "false");
        SharedTilesPerChunk = PositiveSetting("BLOCKATTENTION_CUDA_SHARED_TILES", SharedTiling.TilesPerChunk);
    }

    /// <summary>
    /// Whether batched decode steps in bfloat16/float16 read each shared cached block once for
    /// all the sequences that attend to it (tensor cores, <see cref="SharedTiling"/>) instead of
    /// once per sequence (the decode kernel). On by default; <c>BLOCKATTENTION_CUDA_SHARED=0</c>
    /// turns it off.
    /// </summary>
    internal bool UseSharedDecode { get; set; }

    /// <summary>Tiles per chunk of the shared plan (<c>BLOCKATTENTION_CUDA_SHARED_TILES</c>, default <see cref="SharedTiling.TilesPerChunk"/>).</summary>
    internal int SharedTilesPerChunk { get; set; }

    private static int PositiveSetting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int value) && value is > 0 and <= 4096 ? value : fallback;

    /// <summary>
    /// The decode kernel's deep variant (twice the keys in flight per lane, the next tile's
    /// descriptor prefetched): <c>BLOCKATTENTION_CUDA_DECODE_DEEP=1</c>. Off by default.
    /// </summary>
    internal bool DecodeDeep { get; set; }

    /// <summary>Keys per tile of the decode kernel's plan (<c>BLOCKATTENTION_CUDA_DECODE_TILE</c>, default 16).</summary>
    internal int DecodeTile { get; set; }

    /// <summary>Thread blocks per multiprocessor the decode plan aims at for one sequence (<c>BLOCKATTENTION_CUDA_DECODE_BLOCKS</c>, default 8).</summary>
    internal int DecodeBlocksPerMultiprocessor { get; set; }

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

    /// <summary>
    /// Whether calls with at most <see cref="CudaKernels.DecodeFunctions.MaxRows"/> folded query
    /// rows (decode steps) run on the decode kernel (DecodeAttention.cu: every warp streams keys
    /// and values). Off unless <c>BLOCKATTENTION_CUDA_DECODE=1</c>; batched plans
    /// (<see cref="PlanBatch"/>) always use it.
    /// </summary>
    internal bool UseDecodeKernel { get; set; }

    /// <summary>Dynamic shared memory of the tensor-core split kernel, in bytes.</summary>
    internal static int MmaSharedBytes(int headDim) =>
        (MmaRows * headDim + (MmaRows + 4 * Tile) * (headDim + 8)) * sizeof(ushort) + MmaRows * (sizeof(int) + 2 * sizeof(long));

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
        if (UseDecodeKernel && rowsFolded <= CudaKernels.DecodeFunctions.MaxRows && _kernels.Decode(DType, HeadDim) is not null)
        {
            return PlanBatch([segments], queries, [queryPosition]);
        }

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
        WriteSegments(segments, table);
        WriteTiles(tiles, table, segmentInts);

        chunkStarts.CopyTo(table, segmentInts + tileInts);

        var deviceTable = CudaKernels.ToDevice(table, Device);
        var partialOut = empty([chunks, KvHeads, rowsFolded, HeadDim], ScalarType.Float32, Device);
        var partialStats = empty([2, chunks, KvHeads, rowsFolded], ScalarType.Float32, Device);
        return new SegmentPlan(this, segments, deviceTable, segmentInts, tileInts, chunks, rows, rowTiles, queries, queryPosition, partialOut, partialStats) { TensorCores = mma };
    }

    /// <summary>Whether <see cref="PlanBatch"/> takes sequences of <paramref name="queries"/> query rows on this model.</summary>
    internal bool CanPlanBatch(int queries) =>
        queries > 0 && _kernels.Decode(DType, HeadDim) is not null
        && (SharesSegments(queries) || (long)(Heads / KvHeads) * queries <= CudaKernels.DecodeFunctions.MaxRows);

    /// <summary>
    /// Whether a batched call plans all its rows, decode steps and final blocks alike, as one
    /// <see cref="PlanBatch"/> of one query row each on the shared kernel: each cached block is
    /// then read once per call for every row that attends to it.
    /// </summary>
    internal bool PlansEveryRowShared => SharesSegments(1) && _kernels.Decode(DType, HeadDim) is not null;

    /// <summary>Whether <see cref="PlanBatch"/> plans sequences of <paramref name="queries"/> rows with <see cref="PlanShared"/>.</summary>
    private bool SharesSegments(int queries) =>
        queries == 1 && UseSharedDecode && UseTensorCores && CudaKernels.SupportsTensorCores(DType, HeadDim) && Heads / KvHeads <= MmaRows;

    /// <summary>
    /// Plans one forward call of several sequences on the decode kernel: sequence s has
    /// <paramref name="queries"/> query rows at positions <paramref name="queryPositions"/>[s]..,
    /// rows s * queries .. of the call's query and output tensors, over its own
    /// <paramref name="segments"/>[s] (cached blocks may appear in several sequences' lists; they
    /// are read in place by each). Throws where the decode kernel does not exist for this model
    /// or the folded rows (query heads per KV head times <paramref name="queries"/>) exceed
    /// <see cref="CudaKernels.DecodeFunctions.MaxRows"/>.
    /// </summary>
    public SegmentPlan PlanBatch(IReadOnlyList<IReadOnlyList<KvSegment>> segments, int queries, IReadOnlyList<int> queryPositions)
    {
        ArgumentNullException.ThrowIfNull(segments);
        ArgumentNullException.ThrowIfNull(queryPositions);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(queries);
        if (segments.Count == 0 || segments.Count != queryPositions.Count)
        {
            throw new ArgumentException($"{segments.Count} sequences of segments and {queryPositions.Count} query positions: one of each per sequence, at least one");
        }

        if (SharesSegments(queries))
        {
            return PlanShared(segments, queryPositions);
        }

        int group = Heads / KvHeads;
        int rowsFolded = checked(group * queries);
        if (rowsFolded > CudaKernels.DecodeFunctions.MaxRows)
        {
            throw new ArgumentException($"the decode kernel takes at most {CudaKernels.DecodeFunctions.MaxRows} folded rows; {group} query heads per KV head x {queries} queries is {rowsFolded}");
        }

        var functions = _kernels.Decode(DType, HeadDim) ?? throw new InvalidOperationException($"the CUDA decode kernel is not available for {DType} with head dimension {HeadDim}: {CudaKernels.Status}");
        var all = new List<KvSegment>();
        // Sequences share their cached blocks: each block's tensors are checked once per call.
        var checkedTensors = new Dictionary<(Tensor Keys, Tensor Values), long>(TensorPairComparer.Instance);
        foreach (var list in segments)
        {
            ArgumentNullException.ThrowIfNull(list);
            foreach (var segment in list)
            {
                ValidateOnce(segment, all.Count, checkedTensors);

                all.Add(segment);
            }
        }

        var plan = DecodeTiling.Plan([.. segments.Select(list => (IReadOnlyList<int>)[.. list.Select(segment => segment.Length)])], KvHeads, _kernels.Multiprocessors, DecodeTile, DecodeBlocksPerMultiprocessor);
        int segmentInts = all.Count * 16, tileInts = plan.Tiles.Count * 4, chunkInts = plan.Chunks.Count * 4, sequenceInts = segments.Count * 4;
        var table = new int[segmentInts + tileInts + chunkInts + sequenceInts];
        WriteSegments(all, table);
        WriteTiles(plan.Tiles, table, segmentInts);

        int chunkOffset = segmentInts + tileInts;
        for (int c = 0; c < plan.Chunks.Count; c++)
        {
            table[chunkOffset + c * 4 + 0] = plan.Chunks[c].First;
            table[chunkOffset + c * 4 + 1] = plan.Chunks[c].End;
            table[chunkOffset + c * 4 + 2] = plan.Chunks[c].Sequence;
        }

        int sequenceOffset = chunkOffset + chunkInts;
        for (int q = 0; q < segments.Count; q++)
        {
            if (queryPositions[q] < 0)
            {
                throw new ArgumentException($"sequence {q}: negative query position {queryPositions[q]}");
            }

            table[sequenceOffset + q * 4 + 0] = queryPositions[q];
            table[sequenceOffset + q * 4 + 1] = plan.SequenceChunks[q].First;
            table[sequenceOffset + q * 4 + 2] = plan.SequenceChunks[q].End;
        }

        var deviceTable = CudaKernels.ToDevice(table, Device);
        int chunks = plan.Chunks.Count;
        var partialOut = empty([chunks, KvHeads, rowsFolded, HeadDim], ScalarType.Float32, Device);
        var partialStats = empty([2, chunks, KvHeads, rowsFolded], ScalarType.Float32, Device);
        return new SegmentPlan(this, all, deviceTable, segmentInts, tileInts, chunks, rowsFolded, 1, queries, queryPositions[0], partialOut, partialStats)
        {
            Decode = functions,
            Sequences = segments.Count,
            ChunkInts = chunkInts,
            MaxChunksPerSequence = plan.MaxChunksPerSequence,
            DeepDecode = DecodeDeep,
        };
    }

    /// <summary>
    /// Plans a decode step (one query row per sequence) of several sequences on the shared
    /// tensor-core kernel: each distinct segment (the same tensors, length, position and rotation)
    /// is read once for all sequences that list it; see <see cref="SharedTiling"/>.
    /// </summary>
    private SegmentPlan PlanShared(IReadOnlyList<IReadOnlyList<KvSegment>> segments, IReadOnlyList<int> queryPositions)
    {
        var functions = _kernels.Decode(DType, HeadDim) ?? throw new InvalidOperationException($"the CUDA decode kernels are not available for {DType} with head dimension {HeadDim}: {CudaKernels.Status}");
        int group = Heads / KvHeads;
        var distinct = new List<KvSegment>();
        var index = new Dictionary<SegmentKey, int>();
        var checkedTensors = new Dictionary<(Tensor Keys, Tensor Values), long>(TensorPairComparer.Instance);
        var segmentOf = new List<IReadOnlyList<int>>(segments.Count);
        foreach (var list in segments)
        {
            ArgumentNullException.ThrowIfNull(list);
            var own = new int[list.Count];
            for (int i = 0; i < list.Count; i++)
            {
                var segment = list[i];
                var key = new SegmentKey(segment);
                if (!index.TryGetValue(key, out int d))
                {
                    ValidateOnce(segment, distinct.Count, checkedTensors);
                    d = distinct.Count;
                    distinct.Add(segment);
                    index.Add(key, d);
                }

                own[i] = d;
            }

            segmentOf.Add(own);
        }

        var plan = SharedTiling.Plan(segmentOf, [.. distinct.Select(segment => segment.Length)], queryPositions, MmaRows / group, SharedTilesPerChunk);
        if (plan.MaxSlotsPerSequence > DecodeTiling.MaxChunksPerSequence)
        {
            throw new InvalidOperationException($"a sequence of this step needs {plan.MaxSlotsPerSequence} partial results; the combine kernel takes at most {DecodeTiling.MaxChunksPerSequence}");
        }

        int segmentInts = distinct.Count * 16, tileInts = plan.Tiles.Count * 4, workInts = plan.Work.Count * 8, memberInts = plan.Members.Count * 4;
        var table = new int[segmentInts + tileInts + workInts + memberInts + segments.Count * 4];
        WriteSegments(distinct, table);
        WriteTiles(plan.Tiles, table, segmentInts);
        int at = segmentInts + tileInts;

        foreach (var item in plan.Work)
        {
            table[at] = item.FirstTile;
            table[at + 1] = item.EndTile;
            table[at + 2] = item.FirstMember;
            table[at + 3] = item.Members;
            table[at + 4] = item.Chunk;
            at += 8;
        }

        foreach (var member in plan.Members)
        {
            table[at] = member.Row;
            table[at + 1] = member.Position;
            table[at + 2] = member.FirstSlot;
            at += 4;
        }

        for (int q = 0; q < segments.Count; q++)
        {
            table[at] = queryPositions[q];
            table[at + 1] = plan.SequenceSlots[q].First;
            table[at + 2] = plan.SequenceSlots[q].End;
            at += 4;
        }

        var deviceTable = CudaKernels.ToDevice(table, Device);
        var partialOut = empty([plan.Slots, KvHeads, group, HeadDim], ScalarType.Float32, Device);
        var partialStats = empty([2, plan.Slots, KvHeads, group], ScalarType.Float32, Device);
        return new SegmentPlan(this, distinct, deviceTable, segmentInts, tileInts, plan.Slots, group, 1, 1, queryPositions[0], partialOut, partialStats)
        {
            Decode = functions,
            Sequences = segments.Count,
            ChunkInts = workInts + memberInts,
            MaxChunksPerSequence = plan.MaxSlotsPerSequence,
            SharedWorkItems = plan.Work.Count,
            SharedWorkInts = workInts,
            SharedKernel = _kernels.Functions(DType, HeadDim, 64).SharedMma,
        };
    }

    /// <summary>A distinct segment: the same tensors (by reference) with the same length, position and rotation.</summary>
    private readonly record struct SegmentKey(object Keys, object Values, int Length, int KeyPosition, int RotationBase)
    {
        public SegmentKey(KvSegment segment)
            : this(segment.Keys, segment.Values, segment.Length, segment.KeyPosition, segment.RotationBase)
        {
        }

        public bool Equals(SegmentKey other) =>
            ReferenceEquals(Keys, other.Keys) && ReferenceEquals(Values, other.Values)
            && Length == other.Length && KeyPosition == other.KeyPosition && RotationBase == other.RotationBase;

        public override int GetHashCode() =>
            HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(Keys), System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(Values), Length, KeyPosition, RotationBase);
    }

    /// <summary>Runs the shared kernel of a <see cref="PlanShared"/> plan for one layer, then the decode kernels' combine.</summary>
    private unsafe void RunShared(SegmentPlan plan, CudaKernels.DecodeFunctions decode, Tensor queries, int layer, Tensor output)
    {
        _kernels.EnsureContext();
        nint tableAddress = CudaKernels.DataPointer(plan.Table);
        nint q = CudaKernels.DataPointer(queries);
        long queryRowStride = queries.stride(0);
        int group = Heads / KvHeads, kvHeads = KvHeads, layerIndex = layer, n = 1;
        nint segments = tableAddress;
        nint tiles = segments + plan.SegmentInts * sizeof(int);
        nint work = tiles + plan.TileInts * sizeof(int);
        nint members = work + plan.SharedWorkInts * sizeof(int);
        nint sequences = work + plan.ChunkInts * sizeof(int);
        nint frequencies = CudaKernels.DataPointer(_inverseFrequencies);
        float scaleLog2 = (float)(1.0 / Math.Sqrt(HeadDim) * 1.4426950408889634);
        nint partialOut = CudaKernels.DataPointer(plan.PartialOut);
        nint partialMax = CudaKernels.DataPointer(plan.PartialStats);
        nint partialSum = partialMax + plan.Chunks * KvHeads * group * sizeof(float);
        void** splitArgs = stackalloc void*[]
        {
            &q, &queryRowStride, &group, &kvHeads, &segments, &tiles, &work, &members,
            &frequencies, &scaleLog2, &layerIndex, &partialOut, &partialMax, &partialSum,
        };
        CudaDriverApi.Check(CudaDriverApi.cuLaunchKernel(plan.SharedKernel, (uint)plan.SharedWorkItems, (uint)KvHeads, 1, MmaThreads, 1, 1, (uint)MmaSharedBytes(HeadDim), 0, splitArgs, null),
            "cuLaunchKernel(segment_attention_shared_mma)");
        nint outputAddress = CudaKernels.DataPointer(output);
        void** combineArgs = stackalloc void*[]
        {
            &partialOut, &partialMax, &partialSum, &sequences, &n, &group, &kvHeads, &outputAddress,
        };
        CudaDriverApi.Check(CudaDriverApi.cuLaunchKernel(decode.Combine, (uint)(plan.Sequences * Heads), 1, 1, CombineThreads, 1, 1, (uint)(plan.MaxChunksPerSequence * sizeof(float)), 0, combineArgs, null),
            "cuLaunchKernel(decode_combine)");
    }

    /// <summary>Tiles as the kernels read them: int4 (segment, first key, keys, 0) from <paramref name="offset"/>.</summary>
    private static void WriteTiles(IReadOnlyList<(int Segment, int Start, int Count)> tiles, int[] table, int offset)
    {
        for (int t = 0; t < tiles.Count; t++)
        {
            table[offset + t * 4] = tiles[t].Segment;
            table[offset + t * 4 + 1] = tiles[t].Start;
            table[offset + t * 4 + 2] = tiles[t].Count;
        }
    }

    private static void WriteSegments(IReadOnlyList<KvSegment> segments, int[] table)
    {
        var longs = new long[segments.Count * 8];
        var layouts = new Dictionary<(Tensor Keys, Tensor Values), (long Keys, long Values, long LayerStride, long HeadStride)>(TensorPairComparer.Instance);
        for (int s = 0; s < segments.Count; s++)
        {
            var segment = segments[s];
            if (!layouts.TryGetValue((segment.Keys, segment.Values), out var layout))
            {
                layout = (CudaKernels.DataPointer(segment.Keys), CudaKernels.DataPointer(segment.Values), segment.Keys.stride(0), segment.Keys.stride(1));
                layouts.Add((segment.Keys, segment.Values), layout);
            }

            longs[s * 8 + 0] = layout.Keys;
            longs[s * 8 + 1] = layout.Values;
            longs[s * 8 + 2] = layout.LayerStride;
            longs[s * 8 + 3] = layout.HeadStride;
            longs[s * 8 + 4] = segment.Length;
            longs[s * 8 + 5] = segment.KeyPosition;
            longs[s * 8 + 6] = segment.RotationBase;
        }

        Buffer.BlockCopy(longs, 0, table, 0, segments.Count * 16 * sizeof(int));
    }

    /// <summary>Runs the decode kernels of a <see cref="PlanBatch"/> plan for one layer.</summary>
    private unsafe void RunDecode(SegmentPlan plan, CudaKernels.DecodeFunctions functions, Tensor queries, int layer, Tensor output)
    {
        _kernels.EnsureContext();
        nint tableAddress = CudaKernels.DataPointer(plan.Table);
        nint q = CudaKernels.DataPointer(queries);
        long queryRowStride = queries.stride(0);
        int n = plan.Queries, group = Heads / KvHeads, kvHeads = KvHeads, layerIndex = layer;
        nint segments = tableAddress;
        nint tiles = tableAddress + plan.SegmentInts * sizeof(int);
        nint chunks = tiles + plan.TileInts * sizeof(int);
        nint sequences = chunks + plan.ChunkInts * sizeof(int);
        nint frequencies = CudaKernels.DataPointer(_inverseFrequencies);
        float scaleLog2 = (float)(1.0 / Math.Sqrt(HeadDim) * 1.4426950408889634);
        nint partialOut = CudaKernels.DataPointer(plan.PartialOut);
        nint partialMax = CudaKernels.DataPointer(plan.PartialStats);
        nint partialSum = partialMax + plan.Chunks * KvHeads * group * n * sizeof(float);
        void** splitArgs = stackalloc void*[]
        {
            &q, &queryRowStride, &n, &group, &kvHeads, &sequences, &segments, &tiles, &chunks,
            &frequencies, &scaleLog2, &layerIndex, &partialOut, &partialMax, &partialSum,
        };
        CudaDriverApi.Check(CudaDriverApi.cuLaunchKernel(functions.Split(group * n, plan.DeepDecode), (uint)plan.Chunks, (uint)KvHeads, 1, 128, 1, 1, 0, 0, splitArgs, null),
            "cuLaunchKernel(decode_split)");
        nint outputAddress = CudaKernels.DataPointer(output);
        void** combineArgs = stackalloc void*[]
        {
            &partialOut, &partialMax, &partialSum, &sequences, &n, &group, &kvHeads, &outputAddress,
        };
        CudaDriverApi.Check(CudaDriverApi.cuLaunchKernel(functions.Combine, (uint)(plan.Sequences * n * Heads), 1, 1, CombineThreads, 1, 1, (uint)(plan.MaxChunksPerSequence * sizeof(float)), 0, combineArgs, null),
            "cuLaunchKernel(decode_combine)");
    }

    /// <summary>Runs the kernels for one layer: <paramref name="queries"/> <c>[n, ≥heads, headDim]</c> (unrotated) into <paramref name="output"/> <c>[n, heads * headDim]</c>.</summary>
    internal unsafe void Run(SegmentPlan plan, Tensor queries, int layer, Tensor output)
    {
        long rows = (long)plan.Sequences * plan.Queries;
        if (queries.dtype != DType || output.dtype != DType || queries.ndim != 3 || queries.shape[0] != rows
            || queries.shape[1] < Heads || queries.shape[2] != HeadDim || queries.stride(2) != 1 || queries.stride(1) != HeadDim)
        {
            throw new ArgumentException($"queries must be {DType} [{rows}, >= {Heads}, {HeadDim}] with contiguous heads; got {queries.dtype} [{string.Join(", ", queries.shape)}]");
        }

        if (!output.is_contiguous() || output.shape[0] != rows || output.shape[1] != (long)Heads * HeadDim)
        {
            throw new ArgumentException($"the output must be contiguous [{rows}, {Heads * HeadDim}]");
        }

        if (PoisonPartials)
        {
            plan.PartialOut.fill_(Runtime.Scalars.NaN);
            plan.PartialStats.fill_(Runtime.Scalars.NaN);
        }

        if (plan.Decode is { } decode)
        {
            if (plan.SharedWorkItems > 0)
            {
                RunShared(plan, decode, queries, layer, output);
            }
            else
            {
                RunDecode(plan, decode, queries, layer, output);
            }

            return;
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

    /// <summary>
    /// <see cref="Validate"/> for the first segment over a pair of tensors; later segments over the
    /// same pair (a block listed by many sequences of a call) only have their length and position
    /// checked against the positions recorded in <paramref name="checkedTensors"/>: a full check is
    /// a dozen calls into libtorch, and a batch can list the same block 64 times.
    /// </summary>
    private void ValidateOnce(KvSegment segment, int index, Dictionary<(Tensor Keys, Tensor Values), long> checkedTensors)
    {
        if (!checkedTensors.TryGetValue((segment.Keys, segment.Values), out long positions))
        {
            Validate(segment, index);
            checkedTensors.Add((segment.Keys, segment.Values), segment.Keys.shape[2]);
        }
        else if (segment.Length < 0 || segment.Length > positions || segment.KeyPosition < 0)
        {
            throw new ArgumentException($"segment {index}: length {segment.Length} at position {segment.KeyPosition} does not fit its {positions} positions");
        }
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

/// <summary>Pairs of tensors by reference (the same tensor objects, not equal values).</summary>
internal sealed class TensorPairComparer : IEqualityComparer<(Tensor Keys, Tensor Values)>
{
    public static readonly TensorPairComparer Instance = new();

    public bool Equals((Tensor Keys, Tensor Values) x, (Tensor Keys, Tensor Values) y) =>
        ReferenceEquals(x.Keys, y.Keys) && ReferenceEquals(x.Values, y.Values);

    public int GetHashCode((Tensor Keys, Tensor Values) pair) =>
        HashCode.Combine(System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(pair.Keys), System.Runtime.CompilerServices.RuntimeHelpers.GetHashCode(pair.Values));
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

    /// <summary>The decode kernels, where this plan runs on them (<see cref="SegmentAttention.PlanBatch"/>).</summary>
    internal CudaKernels.DecodeFunctions? Decode { get; init; }

    /// <summary>Sequences of the call (1 but for batched decode plans); <see cref="Queries"/> rows each.</summary>
    public int Sequences { get; init; } = 1;

    /// <summary>Chunk table words of a decode plan (4 per chunk; the sequences' table follows); in a shared plan the work and members' words.</summary>
    public int ChunkInts { get; init; }

    /// <summary>The most chunks of one sequence in a decode plan.</summary>
    public int MaxChunksPerSequence { get; init; }

    /// <summary>Whether the decode plan runs the deep variant of the decode kernel.</summary>
    public bool DeepDecode { get; init; }

    /// <summary>Work items of a shared plan (see <see cref="SharedTiling"/>); 0 for other plans.</summary>
    public int SharedWorkItems { get; init; }

    /// <summary>The shared tensor-core kernel of a shared plan (compiled when the plan was made).</summary>
    public nint SharedKernel { get; init; }

    /// <summary>Work table words of a shared plan (8 per item; the members' table follows, then the sequences').</summary>
    public int SharedWorkInts { get; init; }

    /// <summary>The kernel that runs: "shared", "decode", "deep", "mma" or "fma".</summary>
    public string Kernel => SharedWorkItems > 0 ? "shared" : Decode is not null ? (DeepDecode ? "deep" : "decode") : TensorCores ? "mma" : "fma";

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
