namespace BlockAttention.Generation;

/// <summary>How to generate: mode, length, sampling and stopping.</summary>
public sealed record GenerationOptions
{
    /// <summary>The stop strings of the Block-Attention reference server.</summary>
    public static IReadOnlyList<string> ReferenceStopStrings { get; } =
        ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>", "Question:"];

    /// <summary>
    /// The end-of-text markers of the reference's list without <c>Question:</c>, which belongs to
    /// the RAG template only: the default for prompts that are not RAG prompts.
    /// </summary>
    public static IReadOnlyList<string> DefaultStopStrings { get; } =
        ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>"];

    /// <summary>Block (default), Full or BlockOnePass.</summary>
    public AttentionMode Mode { get; init; } = AttentionMode.Block;

    /// <summary>The most tokens to generate (at least 1). Default 256.</summary>
    public int MaxNewTokens { get; init; } = 256;

    /// <summary>0 (default) picks the most likely token (greedy); above 0 samples with this temperature.</summary>
    public float Temperature { get; init; }

    /// <summary>When sampling, keep only the K most likely tokens (0: no limit).</summary>
    public int TopK { get; init; }

    /// <summary>When sampling, keep the smallest set of tokens whose probability reaches P (1: no limit).</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Seed of the sampler: the same seed, prompt and options give the same tokens. Null: a random seed.</summary>
    public int? Seed { get; init; }

    /// <summary>Token ids that end generation; null uses the model's end-of-sequence ids.</summary>
    public IReadOnlyList<int>? StopTokenIds { get; init; }

    /// <summary>
    /// Generation ends when the text contains one of these (not included in the result). Null
    /// (the default) uses the prompt's own list, <see cref="Prompts.BlockPrompt.StopStrings"/>:
    /// the reference's list with <c>Question:</c> for a RAG prompt, end-of-turn markers otherwise.
    /// </summary>
    public IReadOnlyList<string>? StopStrings { get; init; }

    /// <summary>In Block mode, offer newly encoded blocks to the store for later requests. Default true.</summary>
    public bool StoreEncodedBlocks { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 1)
        {
            throw new ArgumentException($"MaxNewTokens must be at least 1, got {MaxNewTokens}");
        }

        if (float.IsNaN(Temperature) || Temperature < 0)
        {
            throw new ArgumentException($"Temperature must be 0 (greedy) or positive, got {Temperature}");
        }

        if (TopK < 0)
        {
            throw new ArgumentException($"TopK must be 0 (off) or positive, got {TopK}");
        }

        if (float.IsNaN(TopP) || TopP <= 0 || TopP > 1)
        {
            throw new ArgumentException($"TopP must be in (0, 1], got {TopP}");
        }

        if (!Enum.IsDefined(Mode))
        {
            throw new ArgumentException($"unknown attention mode {Mode}");
        }

        if (StopStrings is not null && StopStrings.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("StopStrings must not contain null or empty strings");
        }
    }
}
