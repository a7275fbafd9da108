namespace BlockAttention.Llama;

/// <summary>How attention over a cached prefix is computed. Every choice computes exact attention; they differ in speed only.</summary>
public enum AttentionImplementation
{
    /// <summary><see cref="Matmul"/> on CUDA, <see cref="Sdpa"/> elsewhere: the faster of the two where each was measured.</summary>
    Auto,

    /// <summary>libtorch's scaled_dot_product_attention with an additive mask.</summary>
    Sdpa,

    /// <summary>
    /// Three batched matrix operations (scores with the mask added, softmax, weighted values),
    /// query heads of a KV head folded into rows. On an H200 at 32K cached tokens this took
    /// 0.37 ms a layer against SDPA's 0.84 ms, whose kernels leave most of the GPU idle with only
    /// 8 KV heads and a short final block.
    /// </summary>
    Matmul,
}
