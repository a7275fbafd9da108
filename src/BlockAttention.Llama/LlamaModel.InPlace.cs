using BlockAttention.Attention;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BlockAttention.Llama;

/// <summary>The forward pass over cached blocks read in place (CUDA, BlockAttention's kernels).</summary>
public sealed partial class LlamaModel
{
    /// <summary>
    /// Layers with fused kernels around the four matrix products: RMSNorm with the residual add
    /// folded in, the new keys' rotation with their append to the request's cache, split-KV
    /// attention over the segments (two launches), SiLU·up. About ten host calls a layer instead
    /// of fifty. <c>BLOCKATTENTION_CUDA_FUSED=0</c> keeps the stock operations around the attention kernel.
    /// </summary>
    private Tensor? ForwardInPlace(ReadOnlySpan<int> tokens, KvCache cache, int logitsToKeep, int start)
    {
        int count = tokens.Length;
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var attention = _segmentAttention!;
        var kernels = attention.Decoder;
        int heads = _shape.Heads, kvHeads = _shape.KvHeads, headDim = _shape.HeadDim;
        var x = _embedding.index_select(0, TokenTensor(tokens)); // the residual stream, updated in place
        using var segments = attention.Plan(Segments(cache, count), count, start);
        var normed = empty([count, _shape.Hidden], Info.DType, Info.Device);
        var attended = empty([count, heads * headDim], Info.DType, Info.Device);
        var gated = empty([count, _shape.Intermediate], Info.DType, Info.Device);
        Tensor? delta = null;
        for (int i = 0; i < _layers.Length; i++)
        {
            var layer = _layers[i];
            kernels.RmsNorm(x, delta, layer.InputNorm, normed, _shape.RmsNormEps);
            delta?.Dispose();
            using (var qkv = F.linear(normed, layer.Qkv))
            using (var qkvHeads = qkv.view(count, heads + 2 * kvHeads, headDim))
            {
                kernels.RotateAppend(qkvHeads, heads, kvHeads, cache, i, start);
                segments.Attend(qkvHeads, i, attended);
            }

            using (var attentionOut = F.linear(attended, layer.Output))
            {
                kernels.RmsNorm(x, attentionOut, layer.PostAttentionNorm, normed, _shape.RmsNormEps);
            }

            using (var gateUp = F.linear(normed, layer.GateUp))
            {
                kernels.SiluMul(gateUp, gated);
            }

            delta = F.linear(gated, layer.Down);
        }

        x.add_(delta!);
        delta!.Dispose();
        cache.Advance(count);
        return LastLogits(x, count, logitsToKeep);
    }

    private static readonly bool s_fusedLayers = Environment.GetEnvironmentVariable("BLOCKATTENTION_CUDA_FUSED") is not ("0" or "off" or "false");
}
