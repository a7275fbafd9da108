using BlockAttention.Runtime;
using static TorchSharp.torch;

namespace BlockAttention.Llama;

/// <summary>Root-mean-square layer norm, as the reference computes it.</summary>
internal static class RmsNorm
{
    /// <summary>
    /// Normalises in float32, casts back to the input dtype, then applies the weight: the same
    /// order as transformers' <c>LlamaRMSNorm</c>, which matters in bfloat16.
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor weight, double eps)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        using var epsilon = Scalars.Of(eps); // disposed after use, so alive during it (see Scalars)
        var variance = x32.square().mean([-1], keepdim: true);
        var normalised = x32.mul(variance.add_(epsilon).rsqrt_());
        return weight.mul(normalised.to(x.dtype)).MoveToOuterDisposeScope();
    }
}
