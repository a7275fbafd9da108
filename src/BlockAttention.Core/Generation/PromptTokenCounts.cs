namespace BlockAttention.Generation;

/// <summary>A prompt's token counts, per block and in all, as a request would tokenize it.</summary>
/// <param name="Blocks">Tokens of each block, in prompt order (the last is the final block).</param>
/// <param name="Total">All the prompt's tokens.</param>
/// <param name="MaxPositions">The model's position limit (prompt plus generated tokens must fit in it).</param>
public sealed record PromptTokenCounts(IReadOnlyList<int> Blocks, long Total, int MaxPositions)
{
    /// <summary>Whether the prompt fits the model with room for at least one generated token.</summary>
    public bool Fits => Total < MaxPositions;
}

/// <summary>The outcome of <see cref="BlockSession.PrecomputeAsync(IEnumerable{Prompts.PromptBlock}, CancellationToken)"/>.</summary>
/// <param name="Blocks">Blocks given (empty blocks included).</param>
/// <param name="Encoded">Blocks encoded and offered to the store now.</param>
/// <param name="AlreadyStored">Blocks the store already held, left as they were.</param>
/// <param name="EncodedTokens">Tokens of the encoded blocks.</param>
/// <param name="Stored">Encoded blocks the store kept (it may decline a block larger than its limit).</param>
public sealed record PrecomputeResult(int Blocks, int Encoded, int AlreadyStored, long EncodedTokens, int Stored);
