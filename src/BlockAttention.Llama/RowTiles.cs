using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BlockAttention.Llama;

/// <summary>
/// Matrix products whose rows do not depend on the other rows of the call, bit for bit: what
/// makes a batched step give each sequence exactly the result it gets alone.
/// </summary>
/// <remarks>
/// <para>
/// On an x86 CPU with AVX2 and FMA, float32 products run through <see cref="RowDot"/>: each output
/// is one dot product of an input row and a weight row, always summed in the same order, so a row
/// gets the same bits in a call of 1 row or of 100, wherever it lies. It reads each weight once
/// per call, as a matrix-vector product does, so that one row costs what the plain forward pass's
/// product costs, and a few rows little more.
/// </para>
/// <para>
/// Elsewhere (other dtypes, other CPUs) the products are libtorch's, padded to whole tiles:
/// libtorch's CPU float32 GEMM (MKL) computes rows in tiles of four; rows of a last, partial tile
/// (and the whole of a one-row call, a matrix-vector product) are summed in another order and
/// differ in the last bits. Measured on the 2-core EPYC, for the shapes of SmolLM2 and of the
/// test models: with a multiple of four rows every row equals the same row of a 64-row call,
/// wherever it lies. Padding every call to a multiple of four rows (zeros, dropped afterwards)
/// keeps each row exact, but a one-row step then costs a four-row GEMM, which on the 2-core EPYC
/// took twice as long as the matrix-vector product of the plain forward pass.
/// </para>
/// </remarks>
internal static class RowTiles
{
    /// <summary>Rows per tile of the CPU GEMM.</summary>
    public const int Rows = 4;

    /// <summary><c>x Wᵀ</c> for <paramref name="x"/> <c>[n, in]</c>, each row computed as it is alone.</summary>
    public static Tensor Linear(Tensor x, Tensor weight)
    {
        if (RowDot.CanRun(x, weight))
        {
            return RowDot.Linear(x, weight, get_num_threads());
        }

        long n = x.shape[0];
        long padded = (n + Rows - 1) / Rows * Rows;
        if (padded == n)
        {
            return F.linear(x, weight);
        }

        using var full = zeros([padded, x.shape[1]], x.dtype, x.device);
        using (var rows = full.narrow(0, 0, n))
        {
            rows.copy_(x);
        }

        using var product = F.linear(full, weight);
        return product.narrow(0, 0, n);
    }
}

/// <summary>
/// <c>x Wᵀ</c> on the CPU in float32, one fixed-order dot product per output: no output depends on
/// any input row but its own, bit for bit, whatever the number of rows, their place, the blocking
/// or the number of threads.
/// </summary>
/// <remarks>
/// Every dot product sums its 8-wide slices in order into one AVX accumulator with fused
/// multiply-adds, reduces the accumulator in a fixed order (halves, then pairs) and adds the last (fewer than 8) products one by one, also fused. The loops compute four weight rows
/// against two input rows at once (eight independent accumulators, each weight slice loaded once for
/// both rows); the edges run the same per-dot sequence with fewer at once. Threads split the weight
/// rows, never a dot product.
/// </remarks>
internal static unsafe class RowDot
{
    /// <summary>Whether the kernel runs here at all: x86 with AVX2 and FMA (fixed for the process).</summary>
    public static bool IsSupported { get; } = Vector256.IsHardwareAccelerated && Fma.IsSupported && Avx2.IsSupported;

    /// <summary>Whether <see cref="Linear"/> takes this product: float32 matrices on the CPU, within int ranges.</summary>
    public static bool CanRun(Tensor x, Tensor weight) =>
        IsSupported && x.device_type == TorchSharp.DeviceType.CPU && weight.device_type == TorchSharp.DeviceType.CPU
        && x.dtype == ScalarType.Float32 && weight.dtype == ScalarType.Float32 && x.ndim == 2 && weight.ndim == 2
        && x.shape[1] == weight.shape[1] && x.shape[0] > 0 && weight.shape[0] > 0
        && x.shape[1] <= int.MaxValue && weight.shape[0] <= int.MaxValue && x.shape[0] <= int.MaxValue;

    /// <summary>
    /// <c>x Wᵀ</c>: <paramref name="x"/> <c>[n, in]</c>, <paramref name="weight"/> <c>[out, in]</c>,
    /// on up to <paramref name="threads"/> threads (the calling thread and the thread pool's).
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor weight, int threads)
    {
        using var input = x.contiguous();
        using var weights = weight.contiguous();
        int rows = (int)input.shape[0], k = (int)input.shape[1], n = (int)weights.shape[0];
        var output = empty([rows, n], ScalarType.Float32, x.device);
        nint xp = DataPointer(input), wp = DataPointer(weights), yp = DataPointer(output);
        // A part of at least 64 weight rows (whole blocks of 4): fewer are not worth a hand-off.
        int parts = Math.Clamp(Math.Min(threads, n / 64), 1, Environment.ProcessorCount);
        if (parts == 1)
        {
            Run((float*)xp, rows, k, (float*)wp, n, (float*)yp, 0, n);
        }
        else
        {
            int per = (n / parts + 3) & ~3;
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, part =>
            {
                int from = Math.Min(n, part * per), to = part == parts - 1 ? n : Math.Min(n, (part + 1) * per);
                Run((float*)xp, rows, k, (float*)wp, n, (float*)yp, from, to);
            });
        }

        GC.KeepAlive(input);
        GC.KeepAlive(weights);
        return output;
    }

    /// <summary>Outputs <c>y[i, j]</c> for weight rows <paramref name="from"/> to <paramref name="to"/> and every input row.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run(float* x, int rows, int k, float* w, int n, float* y, int from, int to)
    {
        int k8 = k & ~7;
        int j = from;
        for (; j + 4 <= to; j += 4)
        {
            float* w0 = w + (long)j * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            int i = 0;
            for (; i + 2 <= rows; i += 2)
            {
                float* xa = x + (long)i * k, xb = xa + k;
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
                for (int t = 0; t < k8; t += 8)
                {
                    var va = Vector256.Load(xa + t);
                    var vb = Vector256.Load(xb + t);
                    var v0 = Vector256.Load(w0 + t);
                    var v1 = Vector256.Load(w1 + t);
                    var v2 = Vector256.Load(w2 + t);
                    var v3 = Vector256.Load(w3 + t);
                    a0 = Fma.MultiplyAdd(va, v0, a0);
                    a1 = Fma.MultiplyAdd(va, v1, a1);
                    a2 = Fma.MultiplyAdd(va, v2, a2);
                    a3 = Fma.MultiplyAdd(va, v3, a3);
                    b0 = Fma.MultiplyAdd(vb, v0, b0);
                    b1 = Fma.MultiplyAdd(vb, v1, b1);
                    b2 = Fma.MultiplyAdd(vb, v2, b2);
                    b3 = Fma.MultiplyAdd(vb, v3, b3);
                }

                float* ya = y + (long)i * n + j, yb = ya + n;
                ya[0] = Finish(a0, xa, w0, k8, k);
                ya[1] = Finish(a1, xa, w1, k8, k);
                ya[2] = Finish(a2, xa, w2, k8, k);
                ya[3] = Finish(a3, xa, w3, k8, k);
                yb[0] = Finish(b0, xb, w0, k8, k);
                yb[1] = Finish(b1, xb, w1, k8, k);
                yb[2] = Finish(b2, xb, w2, k8, k);
                yb[3] = Finish(b3, xb, w3, k8, k);
            }

            for (; i < rows; i++)
            {
                float* xa = x + (long)i * k;
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int t = 0; t < k8; t += 8)
                {
                    var va = Vector256.Load(xa + t);
                    a0 = Fma.MultiplyAdd(va, Vector256.Load(w0 + t), a0);
                    a1 = Fma.MultiplyAdd(va, Vector256.Load(w1 + t), a1);
                    a2 = Fma.MultiplyAdd(va, Vector256.Load(w2 + t), a2);
                    a3 = Fma.MultiplyAdd(va, Vector256.Load(w3 + t), a3);
                }

                float* ya = y + (long)i * n + j;
                ya[0] = Finish(a0, xa, w0, k8, k);
                ya[1] = Finish(a1, xa, w1, k8, k);
                ya[2] = Finish(a2, xa, w2, k8, k);
                ya[3] = Finish(a3, xa, w3, k8, k);
            }
        }

        for (; j < to; j++)
        {
            float* w0 = w + (long)j * k;
            for (int i = 0; i < rows; i++)
            {
                float* xa = x + (long)i * k;
                Vector256<float> a0 = default;
                for (int t = 0; t < k8; t += 8)
                {
                    a0 = Fma.MultiplyAdd(Vector256.Load(xa + t), Vector256.Load(w0 + t), a0);
                }

                y[(long)i * n + j] = Finish(a0, xa, w0, k8, k);
            }
        }
    }

    /// <summary>The accumulator's lanes summed, then the products past the last whole slice, in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Finish(Vector256<float> accumulator, float* x, float* w, int k8, int k)
    {
        // Written out rather than Vector256.Sum, whose order is the JIT's to choose.
        var half = Sse.Add(accumulator.GetLower(), accumulator.GetUpper());
        float sum = (half.GetElement(0) + half.GetElement(1)) + (half.GetElement(2) + half.GetElement(3));
        for (int t = k8; t < k; t++)
        {
            sum = MathF.FusedMultiplyAdd(x[t], w[t], sum);
        }

        return sum;
    }

    private static nint DataPointer(Tensor tensor) => THSTensor_data(tensor.Handle);

    [DllImport("LibTorchSharp")]
    private static extern nint THSTensor_data(nint handle);
}
