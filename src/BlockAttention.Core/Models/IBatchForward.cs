using BlockAttention.Attention;
using static TorchSharp.torch;

namespace BlockAttention.Models;

/// <summary>
/// Implemented by models that run the steps of several sequences in one forward pass: the
/// weight products run once over all their rows, and each sequence attends to its own
/// <see cref="KvCache"/>. <see cref="BlockSession"/> batches decode steps and final blocks
/// through it; a model without it still serves concurrent requests, one step at a time.
/// </summary>
public interface IBatchForward
{
    /// <summary>True when <see cref="ForwardBatch"/> accepts a step on <paramref name="cache"/> (for example, not one with a <see cref="KvPrefix"/>).</summary>
    bool CanBatch(KvCache cache);

    /// <summary>
    /// Runs every step as <see cref="ICausalLanguageModel.Forward"/> would run it alone, in one pass:
    /// each step's tokens at its cache's next positions, attending to that cache only. Returns
    /// float32 logits <c>[sum of LogitsToKeep, vocab]</c>, the steps' rows in order, or null when
    /// no step keeps any. A step's logits and cache writes do not depend on the other steps of
    /// the batch, bit for bit.
    /// </summary>
    /// <exception cref="ArgumentException">A step is invalid (as for <see cref="ICausalLanguageModel.Forward"/>), or two steps share a cache.</exception>
    Tensor? ForwardBatch(IReadOnlyList<ForwardStep> steps);
}

/// <summary>One sequence's part of a batched forward pass.</summary>
/// <param name="Tokens">Token ids, at least one, at positions <c>cache.PrefixLength + cache.Length</c> on.</param>
/// <param name="Cache">The sequence's cache, attended to and appended to.</param>
/// <param name="LogitsToKeep">How many trailing positions need logits (0 to the token count).</param>
public readonly record struct ForwardStep(ReadOnlyMemory<int> Tokens, KvCache Cache, int LogitsToKeep);
