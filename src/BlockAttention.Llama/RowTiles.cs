using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BlockAttention.Llama;

/// <summary>
/// Matrix products whose rows do not depend on the other rows of the call, bit for bit: what
/// makes a batched step give each sequence exactly the result it gets alone.
/// </summary>
/// <remarks>
/// libtorch's CPU float32 GEMM (MKL) computes rows in tiles of four; rows of a last, partial tile
/// (and the whole of a one-row call, a matrix-vector product) are summed in another order and
/// differ in the last bits. Measured on the 2-core EPYC, for the shapes of SmolLM2 and of the
/// test models: with a multiple of four rows every row equals the same row of a 64-row call,
/// wherever it lies; with 1, 2, 3, 5, 6, 7, 9, 10 or 11 rows the rows of the partial tile
/// differ. Padding every call to a multiple of four rows (zeros, dropped afterwards) costs
/// little where the weights' memory traffic bounds the time, as it does for a few rows.
/// </remarks>
internal static class RowTiles
{
    /// <summary>Rows per tile of the CPU GEMM.</summary>
    public const int Rows = 4;

    /// <summary><c>x Wᵀ</c> for <paramref name="x"/> <c>[n, in]</c>, computed on a multiple of <see cref="Rows"/> rows.</summary>
    public static Tensor Linear(Tensor x, Tensor weight)
    {
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
