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
    /// the half-split layout, computed in float32 and returned in <paramref name="x"/>'s dtype.
    /// Written as a swap of the halves and one fused multiply-add to keep the kernel count low:
    /// this runs twice per layer on every forward step.
    /// </summary>
    public Tensor Apply(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        long half = x32.shape[^1] / 2;
        int last = (int)x32.ndim - 1;
        var swapped = x32.unflatten(last, [2, half]).flip(last).flatten(last);
        var rotated = x32.mul(Cos).addcmul_(swapped, SignedSin, 1);
        return rotated.to(x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>Releases the cos/sin views.</summary>
    public void Dispose()
    {
        Cos.Dispose();
        SignedSin.Dispose();
    }
}
