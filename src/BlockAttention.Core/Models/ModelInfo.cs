using static TorchSharp.torch;

namespace BlockAttention.Models;

/// <summary>
/// What the runtime needs to know about a model: its cache shape, limits, dtype, device, the
/// tokens that end generation, and a fingerprint that identifies its weights.
/// </summary>
/// <param name="Family">The model family, e.g. "llama".</param>
/// <param name="Layers">Number of decoder layers.</param>
/// <param name="KvHeads">Key/value heads per layer.</param>
/// <param name="HeadDim">Dimension of one head.</param>
/// <param name="VocabSize">Size of the output vocabulary.</param>
/// <param name="MaxPositions">The longest sequence the model supports (prompt plus generated tokens).</param>
/// <param name="DType">The dtype of weights, activations and KV cache.</param>
/// <param name="Device">The device the model runs on.</param>
/// <param name="EndOfSequenceTokenIds">Token ids that end generation.</param>
/// <param name="Fingerprint">Identifies config, weights, dtype and device kind: KV states are reusable only between equal fingerprints.</param>
public sealed record ModelInfo(
    string Family,
    int Layers,
    int KvHeads,
    int HeadDim,
    int VocabSize,
    int MaxPositions,
    ScalarType DType,
    Device Device,
    IReadOnlyList<int> EndOfSequenceTokenIds,
    string Fingerprint)
{
    /// <summary>
    /// The checkpoint's chat template (Hugging Face <c>chat_template</c> from
    /// <c>tokenizer_config.json</c>), or null when it has none. Used to choose a
    /// <see cref="Prompts.ChatFormat"/>; never executed.
    /// </summary>
    public string? ChatTemplate { get; init; }

    /// <summary>Bytes of KV cache one token takes across all layers.</summary>
    public long KvBytesPerToken => checked(2L * Layers * KvHeads * HeadDim * ElementSize(DType));

    private static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        ScalarType.Float64 => 8,
        _ => throw new NotSupportedException($"unsupported cache dtype {dtype}"),
    };
}
