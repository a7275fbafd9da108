// Split-KV ("flash-decoding") attention of a short block of queries over a list of KV segments,
// with the rotary position embedding applied to the QUERIES per segment.
//
// Compiled at run time by NVRTC, once per (ELEM_ID, HEAD_DIM, ROWS), so no CUDA headers are used:
//   ELEM_ID 0 = float32, 1 = bfloat16, 2 = float16 (storage of queries, keys, values, output)
//   HEAD_DIM a multiple of 4 from 8 to 128 (tensor cores: multiples of 16); ROWS = folded query
//   rows per thread block of the CUDA-core kernel (16, or 64; 64 below a head dimension of 16)
//
// Layout:
//   queries  [n, *, HEAD_DIM] with a row stride (the fused q/k/v projection, unrotated queries)
//   segment  keys/values of one layer: base + layer * layerStride + kvHead * headStride + j * HEAD_DIM
//            key j was rotated for position keyPosition + j - rotationBase (a cached block was
//            encoded alone from position 0: rotationBase = its offset o; the request's tail was
//            rotated for its absolute positions: rotationBase = 0), so a query at position p is
//            rotated by (p - rotationBase) before its dot product with them:
//            q_rot(p) . k_rot(o + j) = q_rot(p - o) . k_rot(j)
//   key j of a segment sits at absolute position keyPosition + j; a query at p sees it iff <= p
//   (causal within the request's own tail; cached blocks are all before the queries).
// Rows: the query heads of one KV head are folded into rows (g, i) -> g * n + i, so each K/V tile
// is read once for all query heads of its group.
// The split kernel writes, per chunk of tiles, unnormalised outputs with their running max and
// sum (base-2 logarithms); the combine kernel merges the chunks and writes the output rows.

#define TILE 64
#define THREADS 256
#define QSTRIDE (HEAD_DIM + 4)
#define PSTRIDE (TILE + 4)
#define NEG_INF __int_as_float(0xff800000)

typedef unsigned short u16;

#if ELEM_ID == 0
typedef float elem_t;
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float from_float_(float x) { return x; }
__device__ __forceinline__ float4 load4(const elem_t* p) { return *reinterpret_cast<const float4*>(p); }
#else
typedef u16 elem_t;
#if ELEM_ID == 1
__device__ __forceinline__ float to_float(u16 x) { return __uint_as_float(((unsigned)x) << 16); }
__device__ __forceinline__ u16 from_float_(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)0x7fc0;   // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);                            // round to nearest even
    return (u16)(u >> 16);
}
#else
__device__ __forceinline__ float to_float(u16 x) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x)); return f; }
__device__ __forceinline__ u16 from_float_(float f) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
#endif
__device__ __forceinline__ float4 load4(const elem_t* p)
{
    uint2 raw = *reinterpret_cast<const uint2*>(p);
    return make_float4(to_float((u16)(raw.x & 0xffffu)), to_float((u16)(raw.x >> 16)),
                       to_float((u16)(raw.y & 0xffffu)), to_float((u16)(raw.y >> 16)));
}
#endif

struct Segment
{
    long long keys, values;          // device addresses of layer 0, head 0, key 0
    long long layerStride, headStride; // in elements
    long long length, keyPosition, rotationBase, unused;
};

// Loads `count` keys (or values) of one tile into shared memory as float32, zero past `count`.
__device__ __forceinline__ void load_tile(float* dst, const elem_t* src, int count)
{
    for (int unit = threadIdx.x; unit < TILE * HEAD_DIM / 4; unit += THREADS)
    {
        int key = unit / (HEAD_DIM / 4);
        int d = (unit % (HEAD_DIM / 4)) * 4;
        float4 v = key < count ? load4(src + (long long)key * HEAD_DIM + d) : make_float4(0.f, 0.f, 0.f, 0.f);
        *reinterpret_cast<float4*>(dst + key * QSTRIDE + d) = v;
    }
}

extern "C" __global__ void __launch_bounds__(THREADS, 2) segment_attention_split(
    const elem_t* __restrict__ queries, long long queryRowStride, int n, int group, int kvHeads,
    int queryPosition, const Segment* __restrict__ segments, const int4* __restrict__ tiles,
    const int* __restrict__ chunkStarts, const float* __restrict__ inverseFrequencies,
    float scaleLog2, int layer, float* __restrict__ partialOut, float* __restrict__ partialMax,
    float* __restrict__ partialSum)
{
    extern __shared__ float4 shared4[];
    float* smem = reinterpret_cast<float*>(shared4);
    float* qs = smem;                         // [ROWS][QSTRIDE] rotated queries
    float* kv = qs + ROWS * QSTRIDE;          // [TILE][QSTRIDE] keys, then values
    float* ps = kv + TILE * QSTRIDE;          // [ROWS][PSTRIDE] scores, then probabilities
    float* rowMax = ps + ROWS * PSTRIDE;      // running max (log2 units)
    float* rowSum = rowMax + ROWS;
    float* rowScale = rowSum + ROWS;
    int* rowPosition = reinterpret_cast<int*>(rowScale + ROWS);

    // Row tiles vary fastest, so the blocks reading the same K/V chunk run together (L2 reuse).
    const int chunk = blockIdx.y, kvHead = blockIdx.z, row0 = blockIdx.x * ROWS;
    const int rowsFolded = group * n;
    const int tid = threadIdx.x;

    // This thread's query pairs (dimension i with i + HEAD_DIM/2), unrotated, in registers.
    constexpr int PAIRS = (ROWS * (HEAD_DIM / 2) + THREADS - 1) / THREADS;
    float qa[PAIRS], qb[PAIRS];
#pragma unroll
    for (int k = 0; k < PAIRS; k++)
    {
        int idx = tid + k * THREADS;
        int r = idx / (HEAD_DIM / 2), i = idx % (HEAD_DIM / 2), folded = row0 + r;
        qa[k] = 0.f; qb[k] = 0.f;
        if (idx < ROWS * (HEAD_DIM / 2) && folded < rowsFolded)
        {
            int g = folded / n, qi = folded % n;
            const elem_t* row = queries + (long long)qi * queryRowStride + (long long)(kvHead * group + g) * HEAD_DIM;
            qa[k] = to_float(row[i]);
            qb[k] = to_float(row[i + HEAD_DIM / 2]);
        }
    }

    if (tid < ROWS)
    {
        int folded = row0 + tid;
        rowPosition[tid] = folded < rowsFolded ? queryPosition + folded % n : -1;
        rowMax[tid] = NEG_INF;
        rowSum[tid] = 0.f;
    }

    // Output accumulators: rows orow*OR + a, dimensions odim + DW b, where DW threads share a row
    // group (32, or the head dimension when it is smaller).
    constexpr int DW = HEAD_DIM < 32 ? HEAD_DIM : 32;
    constexpr int OR = ROWS * DW / THREADS, OD = HEAD_DIM / DW;
    const int odim = tid % DW, orow = tid / DW;
    float acc[OR][OD];
#pragma unroll
    for (int a = 0; a < OR; a++)
#pragma unroll
        for (int b = 0; b < OD; b++) acc[a][b] = 0.f;

    // Scores: rows srow*SR + a, keys skey + 16 b.
    constexpr int SR = ROWS / 16;
    const int skey = tid % 16, srow = tid / 16;

    int currentSegment = -1;
    const elem_t* keyBase = 0;
    const elem_t* valueBase = 0;
    long long keyPosition = 0;
    __syncthreads();

    for (int t = chunkStarts[chunk], tEnd = chunkStarts[chunk + 1]; t < tEnd; t++)
    {
        const int4 tile = tiles[t];
        const int start = tile.y, count = tile.z;
        if (tile.x != currentSegment)
        {
            currentSegment = tile.x;
            const Segment seg = segments[currentSegment];
            long long head = (long long)layer * seg.layerStride + (long long)kvHead * seg.headStride;
            keyBase = reinterpret_cast<const elem_t*>(seg.keys) + head;
            valueBase = reinterpret_cast<const elem_t*>(seg.values) + head;
            keyPosition = seg.keyPosition;
            int rotationBase = (int)seg.rotationBase;
            // Rotate the queries for this segment: angle (p - base) * inv_freq in float32.
#pragma unroll
            for (int k = 0; k < PAIRS; k++)
            {
                int idx = tid + k * THREADS;
                if (idx >= ROWS * (HEAD_DIM / 2)) break;
                int r = idx / (HEAD_DIM / 2), i = idx % (HEAD_DIM / 2);
                int position = rowPosition[r];
                float s, c;
                sincosf((float)(position - rotationBase) * inverseFrequencies[i], &s, &c);
                qs[r * QSTRIDE + i] = qa[k] * c - qb[k] * s;
                qs[r * QSTRIDE + i + HEAD_DIM / 2] = qb[k] * c + qa[k] * s;
            }
        }

        load_tile(kv, keyBase + (long long)start * HEAD_DIM, count);
        __syncthreads();

        // Scores of SR rows x 4 keys per thread, float32.
        float s[SR][4];
#pragma unroll
        for (int a = 0; a < SR; a++)
#pragma unroll
            for (int b = 0; b < 4; b++) s[a][b] = 0.f;
#pragma unroll 4
        for (int d = 0; d < HEAD_DIM; d += 4)
        {
            float4 qv[SR], kk[4];
#pragma unroll
            for (int a = 0; a < SR; a++) qv[a] = *reinterpret_cast<const float4*>(qs + (srow * SR + a) * QSTRIDE + d);
#pragma unroll
            for (int b = 0; b < 4; b++) kk[b] = *reinterpret_cast<const float4*>(kv + (skey + 16 * b) * QSTRIDE + d);
#pragma unroll
            for (int a = 0; a < SR; a++)
#pragma unroll
                for (int b = 0; b < 4; b++)
                    s[a][b] += qv[a].x * kk[b].x + qv[a].y * kk[b].y + qv[a].z * kk[b].z + qv[a].w * kk[b].w;
        }

#pragma unroll
        for (int a = 0; a < SR; a++)
        {
            int r = srow * SR + a;
            int position = rowPosition[r];
#pragma unroll
            for (int b = 0; b < 4; b++)
            {
                int key = skey + 16 * b;
                bool visible = key < count && keyPosition + start + key <= (long long)position && position >= 0;
                ps[r * PSTRIDE + key] = visible ? s[a][b] * scaleLog2 : NEG_INF;
            }
        }

        __syncthreads();

        // Values replace keys in shared memory while the softmax runs.
        load_tile(kv, valueBase + (long long)start * HEAD_DIM, count);
        {
            constexpr int PER_ROW = THREADS / ROWS;          // threads of one row (4 or 16)
            const int r = tid / PER_ROW, lane = tid % PER_ROW;
            float tileMax = NEG_INF;
            for (int key = lane; key < TILE; key += PER_ROW) tileMax = fmaxf(tileMax, ps[r * PSTRIDE + key]);
#pragma unroll
            for (int offset = PER_ROW / 2; offset > 0; offset /= 2)
                tileMax = fmaxf(tileMax, __shfl_xor_sync(0xffffffffu, tileMax, offset));
            float oldMax = rowMax[r];
            float newMax = fmaxf(oldMax, tileMax);
            float sum = 0.f;
            for (int key = lane; key < TILE; key += PER_ROW)
            {
                float score = ps[r * PSTRIDE + key];
                float p = newMax == NEG_INF ? 0.f : exp2f(score - newMax);
                ps[r * PSTRIDE + key] = p;
                sum += p;
            }
#pragma unroll
            for (int offset = PER_ROW / 2; offset > 0; offset /= 2)
                sum += __shfl_xor_sync(0xffffffffu, sum, offset);
            if (lane == 0)
            {
                float scale = newMax == NEG_INF ? 1.f : exp2f(oldMax - newMax);
                rowScale[r] = scale;
                rowSum[r] = rowSum[r] * scale + sum;
                rowMax[r] = newMax;
            }
        }

        __syncthreads();

#pragma unroll
        for (int a = 0; a < OR; a++)
        {
            float scale = rowScale[orow * OR + a];
#pragma unroll
            for (int b = 0; b < OD; b++) acc[a][b] *= scale;
        }

        const int keys = count;
        for (int key = 0; key < keys; key += 4)
        {
            float4 p[OR];
#pragma unroll
            for (int a = 0; a < OR; a++) p[a] = *reinterpret_cast<const float4*>(ps + (orow * OR + a) * PSTRIDE + key);
#pragma unroll
            for (int b = 0; b < OD; b++)
            {
                int d = odim + DW * b;
                float v0 = kv[(key + 0) * QSTRIDE + d], v1 = kv[(key + 1) * QSTRIDE + d];
                float v2 = kv[(key + 2) * QSTRIDE + d], v3 = kv[(key + 3) * QSTRIDE + d];
#pragma unroll
                for (int a = 0; a < OR; a++) acc[a][b] += p[a].x * v0 + p[a].y * v1 + p[a].z * v2 + p[a].w * v3;
            }
        }

        __syncthreads();
    }

    const long long rowBase = ((long long)chunk * kvHeads + kvHead) * rowsFolded;
#pragma unroll
    for (int a = 0; a < OR; a++)
    {
        int folded = row0 + orow * OR + a;
        if (folded < rowsFolded)
        {
#pragma unroll
            for (int b = 0; b < OD; b++) partialOut[(rowBase + folded) * HEAD_DIM + odim + DW * b] = acc[a][b];
        }
    }

    if (tid < ROWS && row0 + tid < rowsFolded)
    {
        partialMax[rowBase + row0 + tid] = rowMax[tid];
        partialSum[rowBase + row0 + tid] = rowSum[tid];
    }
}

#if ELEM_ID != 0 && HEAD_DIM % 16 == 0
// Tensor-core variant for bfloat16 and float16: four warps of 16 query rows each; scores and the
// weighted values use mma.sync m16n8k16 with float32 accumulation. The queries are rotated in
// float32 and rounded to the storage type for the product (as the model's own rotation is);
// probabilities are rounded to it for the product with the values, as FlashAttention does.
#define MMA_WARPS 4
#define MROWS (16 * MMA_WARPS)
#define KSTRIDE (HEAD_DIM + 8)

__device__ __forceinline__ void mma16816(float* c, const unsigned* a, unsigned b0, unsigned b1)
{
#if ELEM_ID == 1
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
#else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
#endif
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned pack2(float lo, float hi)
{
    return (unsigned)from_float_(lo) | ((unsigned)from_float_(hi) << 16);
}

__device__ __forceinline__ unsigned shared_address(const void* pointer)
{
    unsigned address;
    asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(address) : "l"(pointer));
    return address;
}

// 16 bytes from global to shared memory without passing through registers; zero-filled when !valid.
__device__ __forceinline__ void copy16_async(void* destination, const void* source, bool valid)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(shared_address(destination)), "l"(source), "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void async_commit() { asm volatile("cp.async.commit_group;"); }
__device__ __forceinline__ void async_wait_all_but_one() { asm volatile("cp.async.wait_group 1;"); }
__device__ __forceinline__ void async_wait_all() { asm volatile("cp.async.wait_group 0;"); }

// The tensor-core kernels' shared memory: unrotated and rotated queries, double-buffered keys and
// values, and per row its position (-1: no row), the element offset of its unrotated query head
// in `queries`, and its row of the partial results.
struct MmaShared
{
    u16* rawQ;             // [MROWS][HEAD_DIM] unrotated
    u16* qs;               // [MROWS][KSTRIDE] rotated
    u16* ks;               // [2][TILE][KSTRIDE] keys, double-buffered
    u16* vs;               // [2][TILE][KSTRIDE] values
    int* rowPosition;      // [MROWS]
    long long* rowQuery;   // [MROWS]
    long long* rowOut;     // [MROWS]
};

__device__ __forceinline__ MmaShared mma_shared()
{
    extern __shared__ float4 shared4[];
    MmaShared sh;
    sh.rawQ = reinterpret_cast<u16*>(shared4);
    sh.qs = sh.rawQ + MROWS * HEAD_DIM;
    sh.ks = sh.qs + MROWS * KSTRIDE;
    sh.vs = sh.ks + 2 * TILE * KSTRIDE;
    sh.rowPosition = reinterpret_cast<int*>(sh.vs + 2 * TILE * KSTRIDE);
    sh.rowQuery = reinterpret_cast<long long*>(sh.rowPosition + MROWS);
    sh.rowOut = sh.rowQuery + MROWS;
    return sh;
}

// The split work of one thread block: tiles [tBegin, tEnd) for the rows that the caller described
// in sh.rowPosition / rowQuery / rowOut (the first `validRows` of MROWS exist). Each row's
// arithmetic depends only on its own query and the tiles: never on the block's other rows.
__device__ __forceinline__ void split_mma_body(
    const MmaShared& sh, const elem_t* __restrict__ queries, const Segment* __restrict__ segments,
    const int4* __restrict__ tiles, int tBegin, int tEnd, int validRows, int kvHead,
    const float* __restrict__ inverseFrequencies, float scaleLog2, int layer,
    float* __restrict__ partialOut, float* __restrict__ partialMax, float* __restrict__ partialSum)
{
    u16* rawQ = sh.rawQ;
    u16* qs = sh.qs;
    u16* ks = sh.ks;
    u16* vs = sh.vs;
    const int* rowPosition = sh.rowPosition;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, g = lane >> 2, tg = lane & 3;

    // Queues tile t's keys and values into buffer `buffer` (one commit group).
    auto issue = [&](int t, int buffer)
    {
        const int4 tile = tiles[t];
        const Segment* seg = segments + tile.x;
        long long head = (long long)layer * seg->layerStride + (long long)kvHead * seg->headStride + (long long)tile.y * HEAD_DIM;
        const elem_t* keySource = reinterpret_cast<const elem_t*>(seg->keys) + head;
        const elem_t* valueSource = reinterpret_cast<const elem_t*>(seg->values) + head;
        u16* keyDestination = ks + buffer * TILE * KSTRIDE;
        u16* valueDestination = vs + buffer * TILE * KSTRIDE;
        for (int unit = tid; unit < TILE * HEAD_DIM / 8; unit += 32 * MMA_WARPS)
        {
            int key = unit / (HEAD_DIM / 8), d = (unit % (HEAD_DIM / 8)) * 8;
            bool valid = key < tile.z;
            long long offset = valid ? (long long)key * HEAD_DIM + d : 0;
            copy16_async(keyDestination + key * KSTRIDE + d, keySource + offset, valid);
            copy16_async(valueDestination + key * KSTRIDE + d, valueSource + offset, valid);
        }
        async_commit();
    };

    if (tBegin < tEnd) issue(tBegin, 0);

    __syncthreads();   // the caller's row descriptions are visible
    for (int idx = tid; idx < MROWS * HEAD_DIM; idx += 32 * MMA_WARPS)
    {
        int r = idx / HEAD_DIM, d = idx % HEAD_DIM;
        long long source = sh.rowQuery[r];
        rawQ[idx] = source >= 0 ? queries[source + d] : (u16)0;
    }
    __syncthreads();

    const bool active = warp * 16 < validRows;
    const int rowA = warp * 16 + g, rowB = rowA + 8;
    const int posA = rowPosition[rowA], posB = rowPosition[rowB];
    float mA = NEG_INF, mB = NEG_INF, lA = 0.f, lB = 0.f;
    float o[HEAD_DIM / 8][4];
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
    unsigned qf[HEAD_DIM / 16][4];
    int currentSegment = -1;

    for (int t = tBegin; t < tEnd; t++)
    {
        const int buffer = (t - tBegin) & 1;
        if (t + 1 < tEnd)
        {
            issue(t + 1, buffer ^ 1);   // that buffer was last read in iteration t-1, which ended with a barrier
            async_wait_all_but_one();
        }
        else
        {
            async_wait_all();
        }

        const int4 tile = tiles[t];
        const int start = tile.y, count = tile.z;
        const Segment* seg = segments + tile.x;
        const long long keyPosition = seg->keyPosition;
        const bool newSegment = tile.x != currentSegment;
        if (newSegment)
        {
            currentSegment = tile.x;
            int rotationBase = (int)seg->rotationBase;
            // Only the rows that exist: a decode step has `group` of the 64.
            for (int idx = tid; idx < validRows * (HEAD_DIM / 2); idx += 32 * MMA_WARPS)
            {
                int r = idx / (HEAD_DIM / 2), i = idx % (HEAD_DIM / 2);
                float sn, cs;
                sincosf((float)(rowPosition[r] - rotationBase) * inverseFrequencies[i], &sn, &cs);
                float a = to_float(rawQ[r * HEAD_DIM + i]), b = to_float(rawQ[r * HEAD_DIM + i + HEAD_DIM / 2]);
                qs[r * KSTRIDE + i] = from_float_(a * cs - b * sn);
                qs[r * KSTRIDE + i + HEAD_DIM / 2] = from_float_(b * cs + a * sn);
            }
        }
        __syncthreads();   // the tile's copies and (on a new segment) the rotated queries are visible
        if (newSegment && active)
        {
#pragma unroll
            for (int k = 0; k < HEAD_DIM / 16; k++)
            {
                int col = k * 16 + tg * 2;
                qf[k][0] = *reinterpret_cast<const unsigned*>(qs + rowA * KSTRIDE + col);
                qf[k][1] = *reinterpret_cast<const unsigned*>(qs + rowB * KSTRIDE + col);
                qf[k][2] = *reinterpret_cast<const unsigned*>(qs + rowA * KSTRIDE + col + 8);
                qf[k][3] = *reinterpret_cast<const unsigned*>(qs + rowB * KSTRIDE + col + 8);
            }
        }

        if (active)
        {
            const u16* keyTile = ks + buffer * TILE * KSTRIDE;
            const u16* valueTile = vs + buffer * TILE * KSTRIDE;
            float s[TILE / 8][4];
#pragma unroll
            for (int j = 0; j < TILE / 8; j++)
            {
                s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
                const u16* keyRow = keyTile + (j * 8 + g) * KSTRIDE + tg * 2;
#pragma unroll
                for (int k = 0; k < HEAD_DIM / 16; k++)
                {
                    unsigned b0 = *reinterpret_cast<const unsigned*>(keyRow + k * 16);
                    unsigned b1 = *reinterpret_cast<const unsigned*>(keyRow + k * 16 + 8);
                    mma16816(s[j], qf[k], b0, b1);
                }
            }

            float maxA = NEG_INF, maxB = NEG_INF;
#pragma unroll
            for (int j = 0; j < TILE / 8; j++)
            {
#pragma unroll
                for (int e = 0; e < 4; e++)
                {
                    int key = j * 8 + tg * 2 + (e & 1);
                    int position = e < 2 ? posA : posB;
                    bool visible = key < count && position >= 0 && keyPosition + start + key <= (long long)position;
                    s[j][e] = visible ? s[j][e] * scaleLog2 : NEG_INF;
                }
                maxA = fmaxf(maxA, fmaxf(s[j][0], s[j][1]));
                maxB = fmaxf(maxB, fmaxf(s[j][2], s[j][3]));
            }
            maxA = fmaxf(maxA, __shfl_xor_sync(0xffffffffu, maxA, 1));
            maxA = fmaxf(maxA, __shfl_xor_sync(0xffffffffu, maxA, 2));
            maxB = fmaxf(maxB, __shfl_xor_sync(0xffffffffu, maxB, 1));
            maxB = fmaxf(maxB, __shfl_xor_sync(0xffffffffu, maxB, 2));
            float newA = fmaxf(mA, maxA), newB = fmaxf(mB, maxB);
            float scaleA = newA == NEG_INF ? 1.f : exp2f(mA - newA);
            float scaleB = newB == NEG_INF ? 1.f : exp2f(mB - newB);
            float sumA = 0.f, sumB = 0.f;
#pragma unroll
            for (int j = 0; j < TILE / 8; j++)
            {
                s[j][0] = newA == NEG_INF ? 0.f : exp2f(s[j][0] - newA);
                s[j][1] = newA == NEG_INF ? 0.f : exp2f(s[j][1] - newA);
                s[j][2] = newB == NEG_INF ? 0.f : exp2f(s[j][2] - newB);
                s[j][3] = newB == NEG_INF ? 0.f : exp2f(s[j][3] - newB);
                sumA += s[j][0] + s[j][1];
                sumB += s[j][2] + s[j][3];
            }
            lA = lA * scaleA + sumA;
            lB = lB * scaleB + sumB;
            mA = newA;
            mB = newB;
#pragma unroll
            for (int j = 0; j < HEAD_DIM / 8; j++)
            {
                o[j][0] *= scaleA; o[j][1] *= scaleA;
                o[j][2] *= scaleB; o[j][3] *= scaleB;
            }

#pragma unroll
            for (int kk = 0; kk < TILE / 16; kk++)
            {
                unsigned a[4] = { pack2(s[2 * kk][0], s[2 * kk][1]), pack2(s[2 * kk][2], s[2 * kk][3]),
                                  pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]), pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]) };
                // Values as the B operand straight from their [key][dim] rows: ldmatrix .trans
                // hands each thread (keys 2tg, 2tg+1; dim g) of two 8x8 blocks per n-tile.
                const int matrix = lane >> 3;
                const u16* rowAddress = valueTile + (kk * 16 + (lane & 7) + (matrix & 1) * 8) * KSTRIDE + (matrix >> 1) * 8;
#pragma unroll
                for (int j = 0; j < HEAD_DIM / 8; j += 2)
                {
                    unsigned b[4];
                    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                        : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3]) : "r"(shared_address(rowAddress + j * 8)));
                    mma16816(o[j], a, b[0], b[1]);
                    mma16816(o[j + 1], a, b[2], b[3]);
                }
            }
        }
        __syncthreads();
    }

    lA += __shfl_xor_sync(0xffffffffu, lA, 1);
    lA += __shfl_xor_sync(0xffffffffu, lA, 2);
    lB += __shfl_xor_sync(0xffffffffu, lB, 1);
    lB += __shfl_xor_sync(0xffffffffu, lB, 2);
    const long long outA = sh.rowOut[rowA], outB = sh.rowOut[rowB];
#pragma unroll
    for (int j = 0; j < HEAD_DIM / 8; j++)
    {
        int d = j * 8 + tg * 2;
        if (outA >= 0)
        {
            *reinterpret_cast<float2*>(partialOut + outA * HEAD_DIM + d) = make_float2(o[j][0], o[j][1]);
        }
        if (outB >= 0)
        {
            *reinterpret_cast<float2*>(partialOut + outB * HEAD_DIM + d) = make_float2(o[j][2], o[j][3]);
        }
    }
    if (tg == 0)
    {
        if (outA >= 0) { partialMax[outA] = mA; partialSum[outA] = lA; }
        if (outB >= 0) { partialMax[outB] = mB; partialSum[outB] = lB; }
    }
}

extern "C" __global__ void __launch_bounds__(32 * MMA_WARPS) segment_attention_split_mma(
    const elem_t* __restrict__ queries, long long queryRowStride, int n, int group, int kvHeads,
    int queryPosition, const Segment* __restrict__ segments, const int4* __restrict__ tiles,
    const int* __restrict__ chunkStarts, const float* __restrict__ inverseFrequencies,
    float scaleLog2, int layer, float* __restrict__ partialOut, float* __restrict__ partialMax,
    float* __restrict__ partialSum)
{
    const MmaShared sh = mma_shared();
    const int row0 = blockIdx.x * MROWS, chunk = blockIdx.y, kvHead = blockIdx.z;
    const int rowsFolded = group * n;
    if (threadIdx.x < MROWS)
    {
        const int r = threadIdx.x, folded = row0 + r;
        const bool valid = folded < rowsFolded;
        const int gq = folded / n, qi = folded % n;
        sh.rowPosition[r] = valid ? queryPosition + qi : -1;
        sh.rowQuery[r] = valid ? (long long)qi * queryRowStride + (long long)(kvHead * group + gq) * HEAD_DIM : -1;
        sh.rowOut[r] = valid ? ((long long)chunk * kvHeads + kvHead) * rowsFolded + folded : -1;
    }
    split_mma_body(sh, queries, segments, tiles, chunkStarts[chunk], chunkStarts[chunk + 1], min(MROWS, rowsFolded - row0), kvHead,
        inverseFrequencies, scaleLog2, layer, partialOut, partialMax, partialSum);
}

// Decode steps of many sequences that share cached blocks (see SegmentAttention.PlanShared): one
// thread block per (work item, KV head); a work item is one chunk of tiles of one segment and up
// to MROWS / group of the sequences that attend to it, so a block read once serves them all.
//   work     two int4 per item: (first tile, end tile, first member, members), (chunk, 0, 0, 0)
//   members  int4 (query row, position, first partial slot of this segment for that sequence, 0)
// Sequence s's partial row for its slot k is (k * kvHeads + kvHead) * group + g, as the decode
// kernel's combine reads them with one query row per sequence.
extern "C" __global__ void __launch_bounds__(32 * MMA_WARPS) segment_attention_shared_mma(
    const elem_t* __restrict__ queries, long long queryRowStride, int group, int kvHeads,
    const Segment* __restrict__ segments, const int4* __restrict__ tiles,
    const int4* __restrict__ work, const int4* __restrict__ members,
    const float* __restrict__ inverseFrequencies, float scaleLog2, int layer,
    float* __restrict__ partialOut, float* __restrict__ partialMax, float* __restrict__ partialSum)
{
    const MmaShared sh = mma_shared();
    const int4 item = work[2 * blockIdx.x];
    const int chunk = work[2 * blockIdx.x + 1].x, kvHead = blockIdx.y;
    const int validRows = item.w * group;
    if (threadIdx.x < MROWS)
    {
        const int r = threadIdx.x, m = r / group, gq = r % group;
        const bool valid = r < validRows;
        const int4 member = valid ? members[item.z + m] : make_int4(0, -1, 0, 0);
        sh.rowPosition[r] = valid ? member.y : -1;
        sh.rowQuery[r] = valid ? (long long)member.x * queryRowStride + (long long)(kvHead * group + gq) * HEAD_DIM : -1;
        sh.rowOut[r] = valid ? ((long long)(member.z + chunk) * kvHeads + kvHead) * group + gq : -1;
    }
    split_mma_body(sh, queries, segments, tiles, item.x, item.y, validRows, kvHead,
        inverseFrequencies, scaleLog2, layer, partialOut, partialMax, partialSum);
}
#endif

// One thread block of COMBINE_THREADS per (query row, query head). The chunks' maxima and weights
// are read in parallel; the weighted sum then reads the chunks' outputs with no dependent loads.
#define COMBINE_THREADS 128

__device__ __forceinline__ float block_reduce(float value, bool maximum, float* scratch)
{
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2)
    {
        float other = __shfl_xor_sync(0xffffffffu, value, offset);
        value = maximum ? fmaxf(value, other) : value + other;
    }
    __syncthreads();
    if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = value;
    __syncthreads();
    float result = scratch[0];
#pragma unroll
    for (int w = 1; w < COMBINE_THREADS / 32; w++) result = maximum ? fmaxf(result, scratch[w]) : result + scratch[w];
    return result;
}

extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) segment_attention_combine(
    const float* __restrict__ partialOut, const float* __restrict__ partialMax,
    const float* __restrict__ partialSum, int chunks, int n, int group, int kvHeads,
    elem_t* __restrict__ output)
{
    extern __shared__ float weights[];   // [chunks]
    __shared__ float scratch[COMBINE_THREADS / 32];
    const int heads = kvHeads * group;
    const int i = blockIdx.x / heads, head = blockIdx.x % heads;
    const int kvHead = head / group, g = head % group;
    const int rowsFolded = group * n, folded = g * n + i;
    const long long stride = (long long)kvHeads * rowsFolded;
    const long long first = (long long)kvHead * rowsFolded + folded;

    float best = NEG_INF;
    for (int c = threadIdx.x; c < chunks; c += COMBINE_THREADS) best = fmaxf(best, partialMax[first + c * stride]);
    best = block_reduce(best, true, scratch);
    float total = 0.f;
    for (int c = threadIdx.x; c < chunks; c += COMBINE_THREADS)
    {
        float m = partialMax[first + c * stride];
        float w = m == NEG_INF ? 0.f : exp2f(m - best);
        weights[c] = w;
        total += w == 0.f ? 0.f : w * partialSum[first + c * stride];
    }
    total = block_reduce(total, false, scratch);   // its barriers also publish `weights`

    for (int d = threadIdx.x; d < HEAD_DIM; d += COMBINE_THREADS)
    {
        float value = 0.f;
#pragma unroll 8
        for (int c = 0; c < chunks; c++)
        {
            float w = weights[c];
            float o = partialOut[(first + c * stride) * HEAD_DIM + d];
            value += w == 0.f ? 0.f : w * o;   // a chunk that saw no key holds no output
        }
        output[(long long)i * heads * HEAD_DIM + head * HEAD_DIM + d] = from_float_(value / total);
    }
}

// The first combine, kept as a fallback (BLOCKATTENTION_CUDA_COMBINE=serial): one thread per
// dimension walks the chunks in order.
extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) segment_attention_combine_serial(
    const float* __restrict__ partialOut, const float* __restrict__ partialMax,
    const float* __restrict__ partialSum, int chunks, int n, int group, int kvHeads,
    elem_t* __restrict__ output)
{
    const int heads = kvHeads * group;
    const int i = blockIdx.x / heads, head = blockIdx.x % heads;
    const int kvHead = head / group, g = head % group;
    const int rowsFolded = group * n, folded = g * n + i;
    const int d = threadIdx.x;
    if (d >= HEAD_DIM) return;
    float best = NEG_INF;
    for (int c = 0; c < chunks; c++) best = fmaxf(best, partialMax[((long long)c * kvHeads + kvHead) * rowsFolded + folded]);
    float total = 0.f, value = 0.f;
    for (int c = 0; c < chunks; c++)
    {
        long long row = ((long long)c * kvHeads + kvHead) * rowsFolded + folded;
        float m = partialMax[row];
        if (m == NEG_INF) continue;
        float w = exp2f(m - best);
        total += w * partialSum[row];
        value += w * partialOut[row * HEAD_DIM + d];
    }
    output[(long long)i * heads * HEAD_DIM + head * HEAD_DIM + d] = from_float_(value / total);
}

// ---- Fused per-layer kernels of the decoder (one launch each instead of several libtorch ops) ----

// RMSNorm of one row per thread block, as transformers' LlamaRMSNorm computes it: float32
// variance, x * rsqrt(variance + eps) rounded to the storage type, then times the weight (rounded).
// With `delta`, the row is first the residual sum x + delta (rounded, written to `residual`).
extern "C" __global__ void __launch_bounds__(256) rms_norm(
    const elem_t* __restrict__ x, const elem_t* __restrict__ delta, elem_t* __restrict__ residual,
    const elem_t* __restrict__ weight, elem_t* __restrict__ output, int hidden, float eps)
{
    __shared__ float partial[8];
    const long long row = (long long)blockIdx.x * hidden;
    float sum = 0.f;
    for (int i = threadIdx.x; i < hidden; i += 256)
    {
        float v = to_float(x[row + i]);
        if (delta)
        {
            elem_t r = from_float_(v + to_float(delta[row + i]));
            residual[row + i] = r;
            v = to_float(r);
        }
        sum += v * v;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = sum;
    __syncthreads();
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < 8; w++) total += partial[w];
    const float scale = rsqrtf(total / (float)hidden + eps);
    const elem_t* source = delta ? residual : x;
    for (int i = threadIdx.x; i < hidden; i += 256)
    {
        float normalised = to_float(from_float_(to_float(source[row + i]) * scale));
        output[row + i] = from_float_(to_float(weight[i]) * normalised);
    }
}

// Rotates the new tokens' keys for their positions (float32 angles and arithmetic, rounded once)
// and writes keys and values into the request's cache. qkv: [n, heads + 2 kvHeads, HEAD_DIM];
// cache tensors [layers, kvHeads, capacity, HEAD_DIM], `layerOffset` elements to this layer.
// One thread block per (token, KV head), one thread per dimension pair.
extern "C" __global__ void rotate_append(
    const elem_t* __restrict__ qkv, int heads, int kvHeads, elem_t* __restrict__ keys,
    elem_t* __restrict__ values, long long layerOffset, long long headStride, int own,
    int position, const float* __restrict__ inverseFrequencies)
{
    const int i = blockIdx.x, head = blockIdx.y, j = threadIdx.x;
    const elem_t* row = qkv + (long long)i * (heads + 2 * kvHeads) * HEAD_DIM;
    const elem_t* key = row + (long long)(heads + head) * HEAD_DIM;
    const elem_t* value = row + (long long)(heads + kvHeads + head) * HEAD_DIM;
    const long long slot = layerOffset + head * headStride + (long long)(own + i) * HEAD_DIM;
    float s, c;
    sincosf((float)(position + i) * inverseFrequencies[j], &s, &c);
    float a = to_float(key[j]), b = to_float(key[j + HEAD_DIM / 2]);
    keys[slot + j] = from_float_(a * c - b * s);
    keys[slot + j + HEAD_DIM / 2] = from_float_(b * c + a * s);
    values[slot + j] = value[j];
    values[slot + j + HEAD_DIM / 2] = value[j + HEAD_DIM / 2];
}

// rotate_append for the rows of many requests in one launch: row r's entry in `rows` is eight
// int64 (keys, values: device addresses of the request's cache; its layer and head strides in
// elements; the cache position it writes; the token's position; its row of `qkv`; unused). The
// same arithmetic as rotate_append, so a request's cache holds the same bits either way.
extern "C" __global__ void rotate_append_rows(
    const elem_t* __restrict__ qkv, int heads, int kvHeads, const long long* __restrict__ rows,
    int layer, const float* __restrict__ inverseFrequencies)
{
    const long long* entry = rows + (long long)blockIdx.x * 8;
    const int head = blockIdx.y, j = threadIdx.x;
    elem_t* keys = reinterpret_cast<elem_t*>(entry[0]);
    elem_t* values = reinterpret_cast<elem_t*>(entry[1]);
    const long long slot = layer * entry[2] + head * entry[3] + entry[4] * HEAD_DIM;
    const int position = (int)entry[5];
    const elem_t* row = qkv + entry[6] * (heads + 2 * kvHeads) * HEAD_DIM;
    const elem_t* key = row + (long long)(heads + head) * HEAD_DIM;
    const elem_t* value = row + (long long)(heads + kvHeads + head) * HEAD_DIM;
    float s, c;
    sincosf((float)position * inverseFrequencies[j], &s, &c);
    float a = to_float(key[j]), b = to_float(key[j + HEAD_DIM / 2]);
    keys[slot + j] = from_float_(a * c - b * s);
    keys[slot + j + HEAD_DIM / 2] = from_float_(b * c + a * s);
    values[slot + j] = value[j];
    values[slot + j + HEAD_DIM / 2] = value[j + HEAD_DIM / 2];
}

// SiLU(gate) * up, each rounded as libtorch rounds them. gateUp: [n, 2 * intermediate].
extern "C" __global__ void silu_mul(const elem_t* __restrict__ gateUp, elem_t* __restrict__ output, int intermediate, long long total)
{
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (long long)gridDim.x * blockDim.x)
    {
        long long r = idx / intermediate, k = idx % intermediate;
        float gate = to_float(gateUp[r * 2 * intermediate + k]);
        float up = to_float(gateUp[r * 2 * intermediate + intermediate + k]);
        float silu = to_float(from_float_(gate / (1.f + expf(-gate))));
        output[idx] = from_float_(silu * up);
    }
}
