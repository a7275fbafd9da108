using BlockAttention.Llama.Checkpoints;
using BlockAttention.Llama.Tokenization;
using Microsoft.Extensions.Logging;
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

    /// <summary>
    /// Where loading logs what it reads (files, sizes), the dtype and device, how long it took, and
    /// whether TorchSharp's native bridge runs from BlockAttention's patched copy. Null: no logging.
    /// </summary>
    public ILogger? Logger { get; init; }

    /// <summary>Told after each decoder layer is loaded, for a progress display. Called on the loading thread.</summary>
    public IProgress<ModelLoadProgress>? Progress { get; init; }
}

/// <summary>How far loading a model has come.</summary>
/// <param name="LayersLoaded">Decoder layers loaded so far.</param>
/// <param name="Layers">All decoder layers of the model.</param>
public readonly record struct ModelLoadProgress(int LayersLoaded, int Layers)
{
    /// <summary>The fraction done, 0 to 1.</summary>
    public double Fraction => Layers == 0 ? 1 : (double)LayersLoaded / Layers;
}
