using static TorchSharp.torch;

namespace BlockAttention.Runtime;

/// <summary>libtorch's intra-op thread count for the calling thread only.</summary>
/// <remarks>
/// <para>
/// <c>torch.set_num_threads</c> sets the calling thread's OpenMP and MKL thread counts, and also a
/// process-wide default that threads take when they first run a parallel operation. To change one
/// thread alone, the count is set on it, and the process-wide default is then put back from a
/// short-lived helper thread (which leaves the caller's own setting as it is).
/// </para>
/// <para>
/// Why a session's step worker runs on one thread on the CPU: its products have few rows and read
/// every weight once per step, so a second thread adds little, while each of the thousands of
/// parallel regions of a step waits for its slowest thread. On the shared 2-core test machine,
/// under load, a batch of 8 rows through a layer's products took 7 to 10 times longer on two threads
/// than on one (43-77 against 550 ms for 30 products of 3072x576), and a one-row product
/// (a matrix-vector product) runs on one thread either way.
/// </para>
/// </remarks>
internal static class IntraOpThreads
{
    /// <summary>Makes libtorch run the calling thread's operations on <paramref name="threads"/> threads; other threads keep theirs.</summary>
    public static void SetForCurrentThread(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(threads);
        int others = get_num_threads();
        if (others == threads)
        {
            return;
        }

        set_num_threads(threads);
        var restore = new Thread(() => set_num_threads(others)) { IsBackground = true, Name = "BlockAttention thread-count restore" };
        restore.Start();
        restore.Join();
    }
}
