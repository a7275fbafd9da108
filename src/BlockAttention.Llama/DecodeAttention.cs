using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;

namespace BlockAttention.Llama;

/// <summary>
/// One decode token's attention over its own cache on the CPU in float32, read straight from the
/// cache's memory: the batched pass runs it for each decoding sequence of a step.
/// </summary>
/// <remarks>
/// <para>
/// A batched step attends once per sequence, each over its own cache; through libtorch each such
/// attention is a dozen small operations (views, a folded SDPA call, a copy into the step's rows),
/// whose fixed cost, times layers and sequences, was as large as the cache reads themselves. Here
/// each query head's scores are dot products with the cached keys, softmax in float32 and the
/// weighted sum of the cached values, with no temporary tensors.
/// </para>
/// <para>
/// Exact in the batched pass's sense: a sequence's output depends on its query and its cache only,
/// computed the same way in a batch of any size. It differs from libtorch's SDPA (the plain forward
/// pass) in the last bits, as any other summation order would.
/// </para>
/// </remarks>
internal static unsafe class DecodeAttention
{
    /// <summary>
    /// Whether <see cref="Attend"/> takes this step: float32 on the CPU with AVX2 and FMA, head
    /// dimensions in whole 8-wide slices, the cache's positions and dimensions laid out as
    /// <see cref="Attention.KvCache"/> keeps them.
    /// </summary>
    public static bool CanRun(Tensor queries, Tensor keys, Tensor values) =>
        RowDot.IsSupported && queries.device_type == TorchSharp.DeviceType.CPU && keys.device_type == TorchSharp.DeviceType.CPU
        && queries.dtype == ScalarType.Float32 && keys.dtype == ScalarType.Float32 && values.dtype == ScalarType.Float32
        && queries.ndim == 2 && keys.ndim == 3 && values.ndim == 3 && queries.shape[1] % 8 == 0
        && keys.shape[2] == queries.shape[1] && values.shape[2] == queries.shape[1] && keys.shape[1] == values.shape[1]
        && queries.stride(1) == 1 && keys.stride(2) == 1 && values.stride(2) == 1
        && keys.stride(1) == keys.shape[2] && values.stride(1) == values.shape[2]
        && queries.shape[0] % keys.shape[0] == 0 && keys.shape[1] > 0 && keys.shape[1] <= int.MaxValue / 64;

    /// <summary>
    /// softmax(q kᵀ / √d) v for each of the <c>heads</c> query heads <paramref name="queries"/>
    /// <c>[heads, d]</c> (head h reads KV head h / (heads / kvHeads)), over
    /// <paramref name="keys"/> and <paramref name="values"/> <c>[kvHeads, S, d]</c>; writes
    /// <c>[heads * d]</c> into <paramref name="output"/> (contiguous, float32).
    /// </summary>
    public static void Attend(Tensor queries, Tensor keys, Tensor values, Tensor output)
    {
        int heads = (int)queries.shape[0], d = (int)queries.shape[1];
        int kvHeads = (int)keys.shape[0], length = (int)keys.shape[1];
        if (!output.is_contiguous() || output.NumberOfElements != (long)heads * d || output.dtype != ScalarType.Float32)
        {
            throw new ArgumentException($"the output must be contiguous float32 of {heads * d} elements", nameof(output));
        }

        int group = heads / kvHeads;
        float scale = 1f / MathF.Sqrt(d);
        float* q = (float*)DataPointer(queries), k = (float*)DataPointer(keys), v = (float*)DataPointer(values), y = (float*)DataPointer(output);
        long queryStride = queries.stride(0), keyHeadStride = keys.stride(0), valueHeadStride = values.stride(0);
        float[] rented = ArrayPool<float>.Shared.Rent(group * length + group * d);
        try
        {
            fixed (float* scratch = rented)
            {
                for (int kv = 0; kv < kvHeads; kv++)
                {
                    Group(q + kv * group * queryStride, queryStride, group, k + kv * keyHeadStride, v + kv * valueHeadStride, length, d, scale,
                        scratch, scratch + (long)group * length, y + (long)kv * group * d);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }

        GC.KeepAlive(queries);
        GC.KeepAlive(keys);
        GC.KeepAlive(values);
        GC.KeepAlive(output);
    }

    /// <summary>
    /// The <paramref name="group"/> query heads of one KV head over its <paramref name="length"/>
    /// positions (rows of <paramref name="d"/> floats): each key and value row is read from memory
    /// once for all of them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Group(float* q, long queryStride, int group, float* k, float* v, int length, int d, float scale, float* scores, float* sums, float* y)
    {
        // Scores [group, length]: per dot product, even and odd 8-wide slices in two accumulators, summed in a fixed order.
        for (int t = 0; t < length; t++)
        {
            float* key = k + (long)t * d;
            for (int g = 0; g < group; g++)
            {
                float* query = q + g * queryStride;
                Vector256<float> even = default, odd = default;
                int s = 0;
                for (; s + 16 <= d; s += 16)
                {
                    even = Fma.MultiplyAdd(Vector256.Load(query + s), Vector256.Load(key + s), even);
                    odd = Fma.MultiplyAdd(Vector256.Load(query + s + 8), Vector256.Load(key + s + 8), odd);
                }

                if (s < d)
                {
                    even = Fma.MultiplyAdd(Vector256.Load(query + s), Vector256.Load(key + s), even);
                }

                scores[(long)g * length + t] = Reduce(Avx.Add(even, odd)) * scale;
            }
        }

        // Per head: exp(score - max), summed in order; the same code for every position.
        for (int g = 0; g < group; g++)
        {
            float* row = scores + (long)g * length;
            float max = float.NegativeInfinity;
            for (int t = 0; t < length; t++)
            {
                max = MathF.Max(max, row[t]);
            }

            var top = Vector256.Create(max);
            float sum = 0;
            int p = 0;
            for (; p + 8 <= length; p += 8)
            {
                var e = Vector256.Exp(Avx.Subtract(Vector256.Load(row + p), top));
                e.Store(row + p);
                sum += Reduce(e);
            }

            for (; p < length; p++)
            {
                float e = MathF.Exp(row[p] - max);
                row[p] = e;
                sum += e;
            }

            // The weights normalised before the sum over values: y = sum_t (e_t / sum) v_t.
            var inverse = Vector256.Create(1f / sum);
            for (p = 0; p + 8 <= length; p += 8)
            {
                Avx.Multiply(Vector256.Load(row + p), inverse).Store(row + p);
            }

            for (; p < length; p++)
            {
                row[p] *= 1f / sum;
            }
        }

        // The values weighted by the probabilities, accumulated in order over the positions.
        new Span<float>(sums, group * d).Clear();
        for (int t = 0; t < length; t++)
        {
            float* value = v + (long)t * d;
            for (int g = 0; g < group; g++)
            {
                var weight = Vector256.Create(scores[(long)g * length + t]);
                float* sum = sums + g * d;
                for (int s = 0; s < d; s += 8)
                {
                    Fma.MultiplyAdd(weight, Vector256.Load(value + s), Vector256.Load(sum + s)).Store(sum + s);
                }
            }
        }

        for (int g = 0; g < group; g++)
        {
            new ReadOnlySpan<float>(sums + g * d, d).CopyTo(new Span<float>(y + (long)g * d, d));
        }
    }

    /// <summary>The eight lanes summed in a fixed order (halves, then pairs).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Reduce(Vector256<float> x)
    {
        var half = Sse.Add(x.GetLower(), x.GetUpper());
        return (half.GetElement(0) + half.GetElement(1)) + (half.GetElement(2) + half.GetElement(3));
    }

    private static nint DataPointer(Tensor tensor) => THSTensor_data(tensor.Handle);

    [DllImport("LibTorchSharp")]
    private static extern nint THSTensor_data(nint handle);
}
