// Split-KV ("flash-decoding") attention of a short block of queries over a list of KV segments,
// with the rotary position embedding applied to the QUERIES per segment.
//
// Compiled at run time by NVRTC, once per (ELEM_ID, HEAD_DIM, ROWS), so no CUDA headers are used:
//   ELEM_ID 0 = float32, 1 = bfloat16, 2 = float16 (storage of queries, keys, values, output)
//   HEAD_DIM 64 or 128; ROWS = folded query rows per thread block (16 or 64)
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

    const int chunk = blockIdx.x, kvHead = blockIdx.y, row0 = blockIdx.z * ROWS;
    const int rowsFolded = group * n;
    const int tid = threadIdx.x;

    // This thread's query pairs (dimension i with i + HEAD_DIM/2), unrotated, in registers.
    constexpr int PAIRS = ROWS * (HEAD_DIM / 2) / THREADS;
    float qa[PAIRS], qb[PAIRS];
#pragma unroll
    for (int k = 0; k < PAIRS; k++)
    {
        int idx = tid + k * THREADS;
        int r = idx / (HEAD_DIM / 2), i = idx % (HEAD_DIM / 2), folded = row0 + r;
        qa[k] = 0.f; qb[k] = 0.f;
        if (folded < rowsFolded)
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

    // Output accumulators: rows orow*OR + a, dimensions odim + 32 b.
    constexpr int OR = ROWS / 8, OD = HEAD_DIM / 32;
    const int odim = tid % 32, orow = tid / 32;
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
                int d = odim + 32 * b;
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
            for (int b = 0; b < OD; b++) partialOut[(rowBase + folded) * HEAD_DIM + odim + 32 * b] = acc[a][b];
        }
    }

    if (tid < ROWS && row0 + tid < rowsFolded)
    {
        partialMax[rowBase + row0 + tid] = rowMax[tid];
        partialSum[rowBase + row0 + tid] = rowSum[tid];
    }
}

// One thread block per (query row, query head), one thread per dimension.
extern "C" __global__ void __launch_bounds__(HEAD_DIM) segment_attention_combine(
    const float* __restrict__ partialOut, const float* __restrict__ partialMax,
    const float* __restrict__ partialSum, int chunks, int n, int group, int kvHeads,
    elem_t* __restrict__ output)
{
    const int heads = kvHeads * group;
    const int i = blockIdx.x / heads, head = blockIdx.x % heads;
    const int kvHead = head / group, g = head % group;
    const int rowsFolded = group * n, folded = g * n + i;
    const int d = threadIdx.x;
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
