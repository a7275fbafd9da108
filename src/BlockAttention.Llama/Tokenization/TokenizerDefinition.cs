namespace BlockAttention.Llama.Tokenization;

/// <summary>The parts of a Hugging Face <c>tokenizer.json</c> that byte-level BPE encoding needs, validated.</summary>
/// <param name="Vocabulary">Token (in byte-level spelling, a space is <c>Ġ</c>) to id.</param>
/// <param name="Merges">Merge rules in priority order, each <c>"left right"</c>.</param>
/// <param name="AddedTokens">Tokens matched in the text before pre-tokenization.</param>
/// <param name="SplitPattern">The pre-tokenizer's split regex.</param>
/// <param name="IgnoreMerges">Whether a piece that is itself a vocabulary token maps to it without merging.</param>
internal sealed record TokenizerDefinition(
    Dictionary<string, int> Vocabulary,
    List<string> Merges,
    IReadOnlyList<AddedToken> AddedTokens,
    string SplitPattern,
    bool IgnoreMerges);

/// <summary>An entry of <c>added_tokens</c>.</summary>
internal readonly record struct AddedToken(string Content, int Id, bool Special);
