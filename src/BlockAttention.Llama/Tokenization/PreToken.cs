namespace BlockAttention.Llama.Tokenization;

/// <summary>A piece of the input: a span of text to run BPE on, or an added token with its id.</summary>
internal readonly record struct PreToken(int Offset, int Length, int AddedTokenId)
{
    public bool IsAddedToken => AddedTokenId >= 0;
}
