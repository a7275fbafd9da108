// Split-KV attention for decode steps: a few query rows per (sequence, KV head) (the query heads
// of one KV head folded as in SegmentAttention.cu: at most R rows) over KV segments read in
// place, for one or several sequences at once. Memory-bound by design: every warp streams keys
// and values with 16-byte loads (LPK lanes per key, each holding VEC elements), computes its
// scores with a shuffle reduction and keeps a float32 online softmax per row in registers; the
// block's four warps take the chunk's tiles in turn and merge through shared memory at the end.
//
// Compiled by NVRTC once per (ELEM_ID, HEAD_DIM), separately from SegmentAttention.cu, so that
// a failure here only turns this kernel off. No CUDA headers.
//   ELEM_ID 0 = float32, 1 = bfloat16, 2 = float16; HEAD_DIM / VEC a power of two <= 32.
//
// Tables (int32 words):
//   segments  Segment[] as in SegmentAttention.cu (keys/values base, layer and head strides,
//             length, keyPosition, rotationBase)
//   tiles     int4 (segment, start, count, 0): at most DTILE keys of one segment
//   chunks    int4 (first tile, end tile, sequence, 0): one thread block per (chunk, KV head)
//   sequences int4 (queryPosition, first chunk, end chunk, 0)
// Queries: sequence s's query i is row s * n + i of `queries` (row stride queryRowStride), its
// heads contiguous, unrotated. Partials: [chunk, kvHead, group * n] rows of HEAD_DIM floats,
// max and sum in base-2 logarithms. Output: row s * n + i, [heads * HEAD_DIM].

#define NEG_INF __int_as_float(0xff800000)
#define DWARPS 4
#define DTHREADS (32 * DWARPS)

typedef unsigned short u16;

#if ELEM_ID == 0
typedef float elem_t;
#define VEC 4
__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float from_float_(float x) { return x; }
__device__ __forceinline__ void unpack(uint4 raw, float* out)
{
    out[0] = __uint_as_float(raw.x); out[1] = __uint_as_float(raw.y);
    out[2] = __uint_as_float(raw.z); out[3] = __uint_as_float(raw.w);
}
#else
typedef u16 elem_t;
#define VEC 8
#if ELEM_ID == 1
__device__ __forceinline__ float to_float(u16 x) { return __uint_as_float(((unsigned)x) << 16); }
__device__ __forceinline__ float lo_float(unsigned w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float hi_float(unsigned w) { return __uint_as_float(w & 0xffff0000u); }
__device__ __forceinline__ u16 from_float_(float f)
{
    unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (u16)0x7fc0;   // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);                            // round to nearest even
    return (u16)(u >> 16);
}
#else
__device__ __forceinline__ float to_float(u16 x) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x)); return f; }
__device__ __forceinline__ float lo_float(unsigned w) { return to_float((u16)(w & 0xffffu)); }
__device__ __forceinline__ float hi_float(unsigned w) { return to_float((u16)(w >> 16)); }
__device__ __forceinline__ u16 from_float_(float f) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
#endif
__device__ __forceinline__ void unpack(uint4 raw, float* out)
{
    out[0] = lo_float(raw.x); out[1] = hi_float(raw.x);
    out[2] = lo_float(raw.y); out[3] = hi_float(raw.y);
    out[4] = lo_float(raw.z); out[5] = hi_float(raw.z);
    out[6] = lo_float(raw.w); out[7] = hi_float(raw.w);
}
#endif

#define LPK (HEAD_DIM / VEC)   // lanes per key
#define KPS (32 / LPK)         // keys per warp per step

#if HEAD_DIM % VEC != 0 || (LPK & (LPK - 1)) != 0 || LPK > 32 || HEAD_DIM % 4 != 0 || HEAD_DIM > 128
#error "decode kernel: HEAD_DIM / VEC must be a power of two of at most 32"
#endif

struct Segment
{
    long long keys, values;
    long long layerStride, headStride;
    long long length, keyPosition, rotationBase, unused;
};

// 16 bytes of keys or values (rows are 16-byte aligned: HEAD_DIM elements are a multiple of 16
// bytes), through the read-only path, as one vector load.
__device__ __forceinline__ uint4 load_stream(const elem_t* pointer)
{
    uint4 r;
    asm volatile("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(pointer));
    return r;
}

// STEPS: keys and values in flight per lane group (each 16 bytes); PREFETCH: a warp loads the
// descriptor of its next tile while it works on the current one (no dependent load between tiles).
template <int R, int STEPS, bool PREFETCH>
__device__ __forceinline__ void decode_split(
    const elem_t* __restrict__ queries, long long queryRowStride, int n, int group, int kvHeads,
    const int4* __restrict__ sequences, const Segment* __restrict__ segments,
    const int4* __restrict__ tiles, const int4* __restrict__ chunks,
    const float* __restrict__ inverseFrequencies, float scaleLog2, int layer,
    float* __restrict__ partialOut, float* __restrict__ partialMax, float* __restrict__ partialSum)
{
    __shared__ float rawQ[R][HEAD_DIM];
    __shared__ float warpMax[DWARPS][R];
    __shared__ float warpSum[DWARPS][R];
    __shared__ float warpOut[DWARPS][R][HEAD_DIM];

    const int chunk = blockIdx.x, kvHead = blockIdx.y;
    const int4 info = chunks[chunk];
    const int sequence = info.z;
    const int queryPosition = sequences[sequence].x;
    const int rows = group * n;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int sub = lane / LPK;     // which key of a step
    const int d0 = (lane % LPK) * VEC;

    for (int idx = tid; idx < R * HEAD_DIM; idx += DTHREADS)
    {
        int r = idx / HEAD_DIM, d = idx % HEAD_DIM;
        float v = 0.f;
        if (r < rows)
        {
            int g = r / n, qi = r % n;
            v = to_float(queries[(long long)(sequence * n + qi) * queryRowStride + (long long)(kvHead * group + g) * HEAD_DIM + d]);
        }
        rawQ[r][d] = v;
    }

    int rowPos[R];
#pragma unroll
    for (int r = 0; r < R; r++) rowPos[r] = r < rows ? queryPosition + r % n : -1;
    __syncthreads();

    float m[R], l[R], acc[R][VEC], q[R][VEC];
#pragma unroll
    for (int r = 0; r < R; r++)
    {
        m[r] = NEG_INF;
        l[r] = 0.f;
#pragma unroll
        for (int e = 0; e < VEC; e++) { acc[r][e] = 0.f; q[r][e] = 0.f; }
    }

    int currentSegment = -1;
    long long keyPosition = 0;
    const elem_t* keyBase = 0;
    const elem_t* valueBase = 0;

    int4 pending = {0, 0, 0, 0};
    if (PREFETCH && info.x + warp < info.y) pending = tiles[info.x + warp];
    for (int t = info.x + warp; t < info.y; t += DWARPS)
    {
        int4 tile;
        if (PREFETCH)
        {
            tile = pending;
            if (t + DWARPS < info.y) pending = tiles[t + DWARPS];
        }
        else
        {
            tile = tiles[t];
        }
        if (tile.x != currentSegment)
        {
            currentSegment = tile.x;
            const Segment* seg = segments + tile.x;
            long long head = (long long)layer * seg->layerStride + (long long)kvHead * seg->headStride;
            keyBase = reinterpret_cast<const elem_t*>(seg->keys) + head;
            valueBase = reinterpret_cast<const elem_t*>(seg->values) + head;
            keyPosition = seg->keyPosition;
            const int rotationBase = (int)seg->rotationBase;
            // Rotate this lane's VEC dimensions of every row by (position - rotationBase), float32.
#pragma unroll
            for (int e = 0; e < VEC; e++)
            {
                const int d = d0 + e, i = d % (HEAD_DIM / 2);
                const float frequency = inverseFrequencies[i];
                float sn0, cs0;
                sincosf((float)(queryPosition - rotationBase) * frequency, &sn0, &cs0);
#pragma unroll
                for (int r = 0; r < R; r++)
                {
                    float sn = sn0, cs = cs0;
                    if (n > 1 && r < rows) sincosf((float)(rowPos[r] - rotationBase) * frequency, &sn, &cs);
                    float a = rawQ[r][i], b = rawQ[r][i + HEAD_DIM / 2];
                    q[r][e] = d < HEAD_DIM / 2 ? a * cs - b * sn : b * cs + a * sn;
                }
            }
        }

        const int start = tile.y, count = tile.z;
        const elem_t* keyTile = keyBase + (long long)start * HEAD_DIM + d0;
        const elem_t* valueTile = valueBase + (long long)start * HEAD_DIM + d0;
        const long long firstKey = keyPosition + start;
        for (int k0 = 0; k0 < count; k0 += KPS * STEPS)
        {
            uint4 kraw[STEPS], vraw[STEPS];
#pragma unroll
            for (int u = 0; u < STEPS; u++)
            {
                const int key = k0 + u * KPS + sub;
                if (key < count)
                {
                    kraw[u] = load_stream(keyTile + (long long)key * HEAD_DIM);
                    vraw[u] = load_stream(valueTile + (long long)key * HEAD_DIM);
                }
                else
                {
                    kraw[u] = make_uint4(0u, 0u, 0u, 0u);
                    vraw[u] = make_uint4(0u, 0u, 0u, 0u);
                }
            }

            float s[STEPS][R];
#pragma unroll
            for (int u = 0; u < STEPS; u++)
            {
                float kf[VEC];
                unpack(kraw[u], kf);
#pragma unroll
                for (int r = 0; r < R; r++)
                {
                    float dot = 0.f;
#pragma unroll
                    for (int e = 0; e < VEC; e++) dot = fmaf(q[r][e], kf[e], dot);
#pragma unroll
                    for (int offset = LPK / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
                    s[u][r] = dot;
                }
            }

#pragma unroll
            for (int r = 0; r < R; r++)
            {
                float best = NEG_INF;
#pragma unroll
                for (int u = 0; u < STEPS; u++)
                {
                    const int key = k0 + u * KPS + sub;
                    const bool visible = key < count && rowPos[r] >= 0 && firstKey + key <= (long long)rowPos[r];
                    s[u][r] = visible ? s[u][r] * scaleLog2 : NEG_INF;
                    best = fmaxf(best, s[u][r]);
                }
                const float newMax = fmaxf(m[r], best);
                if (newMax != NEG_INF)
                {
                    const float scale = exp2f(m[r] - newMax);   // 0 when nothing was seen yet
                    l[r] *= scale;
#pragma unroll
                    for (int e = 0; e < VEC; e++) acc[r][e] *= scale;
                    m[r] = newMax;
#pragma unroll
                    for (int u = 0; u < STEPS; u++) s[u][r] = exp2f(s[u][r] - newMax);
                }
                else
                {
#pragma unroll
                    for (int u = 0; u < STEPS; u++) s[u][r] = 0.f;
                }
            }

#pragma unroll
            for (int u = 0; u < STEPS; u++)
            {
                float vf[VEC];
                unpack(vraw[u], vf);
#pragma unroll
                for (int r = 0; r < R; r++)
                {
                    l[r] += s[u][r];
#pragma unroll
                    for (int e = 0; e < VEC; e++) acc[r][e] = fmaf(s[u][r], vf[e], acc[r][e]);
                }
            }
        }
    }

    // Merge the warp's key groups (lanes LPK apart hold the same dimensions of other keys).
#pragma unroll
    for (int offset = LPK; offset < 32; offset *= 2)
    {
#pragma unroll
        for (int r = 0; r < R; r++)
        {
            const float otherMax = __shfl_xor_sync(0xffffffffu, m[r], offset);
            const float otherSum = __shfl_xor_sync(0xffffffffu, l[r], offset);
            const float newMax = fmaxf(m[r], otherMax);
            const float mine = newMax == NEG_INF ? 0.f : exp2f(m[r] - newMax);
            const float theirs = newMax == NEG_INF ? 0.f : exp2f(otherMax - newMax);
            l[r] = l[r] * mine + otherSum * theirs;
#pragma unroll
            for (int e = 0; e < VEC; e++)
            {
                const float other = __shfl_xor_sync(0xffffffffu, acc[r][e], offset);
                acc[r][e] = acc[r][e] * mine + other * theirs;
            }
            m[r] = newMax;
        }
    }

    if (sub == 0)
    {
#pragma unroll
        for (int r = 0; r < R; r++)
        {
#pragma unroll
            for (int e = 0; e < VEC; e++) warpOut[warp][r][d0 + e] = acc[r][e];
        }
    }
    if (lane == 0)
    {
#pragma unroll
        for (int r = 0; r < R; r++) { warpMax[warp][r] = m[r]; warpSum[warp][r] = l[r]; }
    }
    __syncthreads();

    const long long rowBase = ((long long)chunk * kvHeads + kvHead) * rows;
    for (int idx = tid; idx < rows * HEAD_DIM; idx += DTHREADS)
    {
        const int r = idx / HEAD_DIM, d = idx % HEAD_DIM;
        float best = NEG_INF;
#pragma unroll
        for (int w = 0; w < DWARPS; w++) best = fmaxf(best, warpMax[w][r]);
        float value = 0.f, total = 0.f;
        if (best != NEG_INF)
        {
#pragma unroll
            for (int w = 0; w < DWARPS; w++)
            {
                const float weight = exp2f(warpMax[w][r] - best);
                value += weight * warpOut[w][r][d];
                total += weight * warpSum[w][r];
            }
        }
        partialOut[(rowBase + r) * HEAD_DIM + d] = value;
        if (d == 0)
        {
            partialMax[rowBase + r] = best;
            partialSum[rowBase + r] = total;
        }
    }
}

#define DECODE_ARGS \
    const elem_t* __restrict__ queries, long long queryRowStride, int n, int group, int kvHeads, \
    const int4* __restrict__ sequences, const Segment* __restrict__ segments, \
    const int4* __restrict__ tiles, const int4* __restrict__ chunks, \
    const float* __restrict__ inverseFrequencies, float scaleLog2, int layer, \
    float* __restrict__ partialOut, float* __restrict__ partialMax, float* __restrict__ partialSum
#define DECODE_PASS queries, queryRowStride, n, group, kvHeads, sequences, segments, tiles, chunks, \
    inverseFrequencies, scaleLog2, layer, partialOut, partialMax, partialSum

extern "C" __global__ void __launch_bounds__(DTHREADS) decode_split_r1(DECODE_ARGS) { decode_split<1, 4, false>(DECODE_PASS); }
extern "C" __global__ void __launch_bounds__(DTHREADS) decode_split_r2(DECODE_ARGS) { decode_split<2, 4, false>(DECODE_PASS); }
extern "C" __global__ void __launch_bounds__(DTHREADS) decode_split_r4(DECODE_ARGS) { decode_split<4, 4, false>(DECODE_PASS); }
extern "C" __global__ void __launch_bounds__(DTHREADS) decode_split_r8(DECODE_ARGS) { decode_split<8, 2, false>(DECODE_PASS); }

// The deep variant: twice the keys in flight per lane and the next tile's descriptor prefetched.
extern "C" __global__ void __launch_bounds__(DTHREADS) decode_deep_r1(DECODE_ARGS) { decode_split<1, 8, true>(DECODE_PASS); }
extern "C" __global__ void __launch_bounds__(DTHREADS) decode_deep_r2(DECODE_ARGS) { decode_split<2, 8, true>(DECODE_PASS); }
extern "C" __global__ void __launch_bounds__(DTHREADS) decode_deep_r4(DECODE_ARGS) { decode_split<4, 8, true>(DECODE_PASS); }
extern "C" __global__ void __launch_bounds__(DTHREADS) decode_deep_r8(DECODE_ARGS) { decode_split<8, 4, true>(DECODE_PASS); }

// One thread block per (output row, query head): merges the chunks of that row's sequence.
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

extern "C" __global__ void __launch_bounds__(COMBINE_THREADS) decode_combine(
    const float* __restrict__ partialOut, const float* __restrict__ partialMax,
    const float* __restrict__ partialSum, const int4* __restrict__ sequences, int n, int group,
    int kvHeads, elem_t* __restrict__ output)
{
    extern __shared__ float weights[];   // [chunks of the sequence]
    __shared__ float scratch[COMBINE_THREADS / 32];
    const int heads = kvHeads * group;
    const int row = blockIdx.x / heads, head = blockIdx.x % heads;
    const int sequence = row / n, i = row % n;
    const int kvHead = head / group, g = head % group;
    const int rowsFolded = group * n, folded = g * n + i;
    const int4 info = sequences[sequence];
    const int count = info.z - info.y;
    const long long stride = (long long)kvHeads * rowsFolded;
    const long long first = ((long long)info.y * kvHeads + kvHead) * rowsFolded + folded;

    float best = NEG_INF;
    for (int c = threadIdx.x; c < count; c += COMBINE_THREADS) best = fmaxf(best, partialMax[first + c * stride]);
    best = block_reduce(best, true, scratch);
    float total = 0.f;
    for (int c = threadIdx.x; c < count; c += COMBINE_THREADS)
    {
        float m = partialMax[first + c * stride];
        float w = m == NEG_INF ? 0.f : exp2f(m - best);
        weights[c] = w;
        total += w == 0.f ? 0.f : w * partialSum[first + c * stride];
    }
    total = block_reduce(total, false, scratch);   // its barriers also publish `weights`

    // The weighted sum: threads are (chunk group, four dimensions), so each thread walks a
    // fraction of the chunks with 16-byte loads; the groups are then added in a fixed order.
    constexpr int DQ = HEAD_DIM / 4;
    constexpr int CG = COMBINE_THREADS / DQ;
    __shared__ float4 groupSums[COMBINE_THREADS];
    const int dq = threadIdx.x % DQ, cg = threadIdx.x / DQ;
    float4 value = make_float4(0.f, 0.f, 0.f, 0.f);
    if (cg < CG)
    {
#pragma unroll 4
        for (int c = cg; c < count; c += CG)
        {
            const float w = weights[c];
            if (w != 0.f)   // a chunk that saw no key holds no output
            {
                const float4 o = *reinterpret_cast<const float4*>(partialOut + (first + c * stride) * HEAD_DIM + dq * 4);
                value.x += w * o.x; value.y += w * o.y; value.z += w * o.z; value.w += w * o.w;
            }
        }
    }
    groupSums[threadIdx.x] = value;
    __syncthreads();
    if (threadIdx.x < DQ)
    {
        float4 sum = groupSums[threadIdx.x];
        for (int group4 = 1; group4 < CG; group4++)
        {
            const float4 other = groupSums[group4 * DQ + threadIdx.x];
            sum.x += other.x; sum.y += other.y; sum.z += other.z; sum.w += other.w;
        }
        elem_t* destination = output + (long long)row * heads * HEAD_DIM + head * HEAD_DIM + threadIdx.x * 4;
        destination[0] = from_float_(sum.x / total);
        destination[1] = from_float_(sum.y / total);
        destination[2] = from_float_(sum.z / total);
        destination[3] = from_float_(sum.w / total);
    }
}
