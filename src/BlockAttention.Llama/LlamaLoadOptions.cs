using BlockAttention.Llama.Checkpoints;
using BlockAttention.Llama.Tokenization;
using static TorchSharp.torch;

namespace BlockAttention.Llama;

/// <summary>Where and in which precision to load a Llama checkpoint.</summary>
public sealed class LlamaLoadOptions
{
    /// <summary>The device: <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>. Default <c>cpu</c>.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>
    /// The dtype of weights, activations and KV cache: float32, bfloat16 or float16. Default
    /// float32. Stored weights are converted at load (bf16 checkpoints are widened exactly). On a
    /// CPU without native bf16, float32 is far faster.
    /// </summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;

    /// <summary>How attention over a cached prefix is computed (default: chosen by device).</summary>
    public AttentionImplementation Attention { get; init; } = AttentionImplementation.Auto;

    /// <summary>The largest size accepted for each kind of checkpoint file (default: <see cref="CheckpointFileLimits.Default"/>).</summary>
    public CheckpointFileLimits FileLimits { get; init; } = CheckpointFileLimits.Default;

    /// <summary>Limits of the checkpoint's tokenizer (regex match timeout, longest text); null for the defaults.</summary>
    public LlamaTokenizerOptions? Tokenizer { get; init; }
}
