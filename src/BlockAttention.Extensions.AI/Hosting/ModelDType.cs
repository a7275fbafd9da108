namespace BlockAttention.Hosting;

/// <summary>
/// The precision of weights, activations and KV cache. In configuration, written as the name
/// (any case): <c>"Float32"</c>, <c>"bfloat16"</c>, <c>"float16"</c>.
/// </summary>
public enum ModelDType
{
    /// <summary>32-bit floats: exact, and the fast choice on a CPU without native bfloat16.</summary>
    Float32,

    /// <summary>bfloat16: half the memory; the usual choice on a GPU.</summary>
    BFloat16,

    /// <summary>IEEE half precision.</summary>
    Float16,
}
