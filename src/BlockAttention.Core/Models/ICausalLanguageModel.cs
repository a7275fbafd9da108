using BlockAttention.Attention;
using BlockAttention.Text;
using static TorchSharp.torch;

namespace BlockAttention.Models;

/// <summary>
/// The contract a model family implements to run under BlockAttention: its shape and one forward
/// step. Everything specific to Block-Attention (block keys, the store, re-encoding of positions,
/// assembly, modes, sampling) lives in the Core library on top of this.
/// </summary>
public interface ICausalLanguageModel : IDisposable
{
    /// <summary>Shape, dtype, device and identity of the model.</summary>
    ModelInfo Info { get; }

    /// <summary>The model's rotary embedding: Block-Attention re-rotates cached keys with it.</summary>
    RotaryEmbedding Rotary { get; }

    /// <summary>The model's tokenizer, or null when the checkpoint has none (prompts must then be token ids).</summary>
    ITextTokenizer? Tokenizer { get; }

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions <c>cache.Length .. cache.Length+n-1</c>: every
    /// token attends to all <c>cache.Length</c> cached positions and causally to the tokens before it
    /// in this call (unless <paramref name="attentionMask"/> says otherwise). Appends the tokens'
    /// keys and values to <paramref name="cache"/>, advances it by n, and returns float32 logits
    /// <c>[logitsToKeep, vocab]</c> of the last <paramref name="logitsToKeep"/> tokens, or null when
    /// that is 0 (encoding only). The caller disposes the logits.
    /// </summary>
    /// <param name="tokens">Token ids, at least one.</param>
    /// <param name="cache">The cache to attend to and append to; created by <see cref="CreateCache"/>.</param>
    /// <param name="logitsToKeep">How many trailing positions need logits (0 to n).</param>
    /// <param name="attentionMask">Optional boolean mask <c>[n, cache.Length+n]</c>, true where a token may attend.</param>
    Tensor? Forward(ReadOnlySpan<int> tokens, KvCache cache, int logitsToKeep = 1, Tensor? attentionMask = null);

    /// <summary>Allocates an empty cache of the model's shape, dtype and device.</summary>
    KvCache CreateCache(int capacity);
}
