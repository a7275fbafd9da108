using static TorchSharp.torch;

namespace BlockAttention.Attention;

/// <summary>
/// The rotation of a run of positions: float32 cos and signed sin (see
/// <see cref="RotaryEmbedding"/>), broadcastable against the tensors they rotate.
/// </summary>
public sealed class RotaryAngles(Tensor cos, Tensor signedSin) : IDisposable
{
    /// <summary>cos of each angle.</summary>
    public Tensor Cos { get; } = cos;

    /// <summary>sin of each angle, negated over the first half of the head.</summary>
    public Tensor SignedSin { get; } = signedSin;

    /// <summary>
    /// <c>x * cos + rotate_half(x) * sin</c> (transformers' <c>apply_rotary_pos_emb</c>) with
    /// the half-split layout, returned in <paramref name="x"/>'s dtype. With float32 angles the
    /// arithmetic is float32 (a bf16 <paramref name="x"/> is promoted by the first product and
    /// rounded once at the end); with angles in x's dtype it runs in that dtype, as the
    /// reference's forward pass does. Written as a swap of the halves and one fused
    /// multiply-add to keep the kernel count low: this runs on every layer of every step.
    /// </summary>
    public Tensor Apply(Tensor x)
    {
        using var scope = NewDisposeScope();
        var rotated = x.mul(Cos).addcmul_(SwapHalves(x), SignedSin, Runtime.Scalars.One);
        return (rotated.dtype == x.dtype ? rotated : rotated.to(x.dtype)).MoveToOuterDisposeScope();
    }

    /// <summary><c>[x1, x2] -> [x2, x1]</c> over the last dimension (a copy).</summary>
    private static Tensor SwapHalves(Tensor x)
    {
        int last = (int)x.ndim - 1;
        long half = x.shape[last] / 2;
        using var pairs = x.unflatten(last, [2, half]);
        using var flipped = pairs.flip(last);
        return flipped.flatten(last);
    }

    /// <summary>Releases the cos/sin views.</summary>
    public void Dispose()
    {
        Cos.Dispose();
        SignedSin.Dispose();
    }
}
