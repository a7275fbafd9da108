namespace BlockAttention.Generation;

/// <summary>The outcome of one request, with its timings and how much Block-Attention reused.</summary>
public sealed record GenerationResult
{
    /// <summary>The generated text (stop string excluded).</summary>
    public required string Text { get; init; }

    /// <summary>The generated token ids (an end-of-sequence token excluded).</summary>
    public required IReadOnlyList<int> TokenIds { get; init; }

    /// <summary>Why generation ended.</summary>
    public required FinishReason FinishReason { get; init; }

    /// <summary>The attention mode used.</summary>
    public required AttentionMode Mode { get; init; }

    /// <summary>From the call until the first token was chosen: tokenization, store lookups, encoding, assembly and the prompt's forward pass.</summary>
    public required TimeSpan TimeToFirstToken { get; init; }

    /// <summary>From the call until the last token.</summary>
    public required TimeSpan TotalTime { get; init; }

    /// <summary>Tokens in the prompt.</summary>
    public required int PromptTokens { get; init; }

    /// <summary>Prompt tokens that went through the model for this request (the rest came from the store).</summary>
    public required int ComputedPromptTokens { get; init; }

    /// <summary>Local (non-final) blocks in the prompt.</summary>
    public required int LocalBlocks { get; init; }

    /// <summary>Local blocks whose states came from the store.</summary>
    public required int ReusedBlocks { get; init; }

    /// <summary>Local blocks encoded on their own for this request (0 in Full and BlockOnePass modes, which run the prompt as one sequence).</summary>
    public required int EncodedBlocks { get; init; }

    /// <summary>Every block of the prompt in order, with its token count and what happened to it (reused, encoded, computed, final).</summary>
    public IReadOnlyList<BlockReport> Blocks { get; init; } = [];

    /// <summary>Where the request's time went: tokenization, lookups, encoding, assembly, final block, decode.</summary>
    public GenerationTimings Timings { get; init; }

    /// <summary>Decode speed after the first token, tokens per second (0 with one token).</summary>
    public double TokensPerSecond => TokenIds.Count > 1 && TotalTime > TimeToFirstToken
        ? (TokenIds.Count - 1) / (TotalTime - TimeToFirstToken).TotalSeconds
        : 0;
}
