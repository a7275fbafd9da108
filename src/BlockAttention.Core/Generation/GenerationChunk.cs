namespace BlockAttention.Generation;

/// <summary>
/// One step of a streamed generation: the text that became final with this token (possibly
/// empty: a UTF-8 character split across tokens, or text that may start a stop string, is held
/// back), and, on the last chunk, the whole result.
/// </summary>
/// <param name="Text">Newly final text.</param>
/// <param name="TokenId">The token generated at this step, or null on a closing chunk that only flushes text.</param>
/// <param name="Result">The result, on the last chunk only.</param>
public sealed record GenerationChunk(string Text, int? TokenId, GenerationResult? Result = null)
{
    /// <summary>True on the last chunk of a generation, which carries the <see cref="Result"/>.</summary>
    public bool IsFinal => Result is not null;
}
