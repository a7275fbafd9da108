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

    /// <summary>
    /// The most tokens to generate (at least 1; up to <see cref="int.MaxValue"/>). Default 256.
    /// Generation also ends when the sequence reaches the model's positions.
    /// </summary>
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

    /// <summary>The default of <see cref="MaxPromptCharacters"/>, per position of the model: 16.</summary>
    public const int DefaultPromptCharactersPerPosition = 16;

    /// <summary>
    /// The most UTF-16 characters the prompt's text blocks may hold together, checked before any of them is
    /// tokenized, so that an oversize prompt is refused at once rather than after its tokenization. Null
    /// (default): <see cref="DefaultPromptCharactersPerPosition"/> per position of the model (2,097,152 for
    /// 131,072 positions), several times what a prompt that fits the model holds (English averages about 4.5
    /// characters per token). The token count is checked against the model's positions after tokenization
    /// either way.
    /// </summary>
    public int? MaxPromptCharacters { get; init; }

    /// <summary>The prompt character limit for a model of <paramref name="maxPositions"/> positions.</summary>
    internal long PromptCharacterLimit(int maxPositions) => MaxPromptCharacters ?? (long)maxPositions * DefaultPromptCharactersPerPosition;

    /// <summary>
    /// Checks every option is finite and in range, before any work: throws naming the first
    /// invalid option and its value.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A number is out of its range (or not finite), or <see cref="Mode"/> is not a defined mode.</exception>
    /// <exception cref="ArgumentException"><see cref="StopStrings"/> holds a null or empty string.</exception>
    public void Validate()
    {
        if (MaxNewTokens < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), MaxNewTokens, $"MaxNewTokens must be at least 1, got {MaxNewTokens}");
        }

        // Infinity would sample uniformly and NaN would poison every probability: neither is a temperature.
        if (!float.IsFinite(Temperature) || Temperature < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, $"Temperature must be 0 (greedy) or a finite positive number, got {Temperature}");
        }

        if (TopK < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, $"TopK must be 0 (off) or positive, got {TopK}");
        }

        if (!float.IsFinite(TopP) || TopP <= 0 || TopP > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, $"TopP must be in (0, 1], got {TopP}");
        }

        if (!Enum.IsDefined(Mode))
        {
            throw new ArgumentOutOfRangeException(nameof(Mode), Mode, $"unknown attention mode {Mode}");
        }

        if (MaxPromptCharacters < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPromptCharacters), MaxPromptCharacters,
                $"MaxPromptCharacters must be at least 1 (or null for the default), got {MaxPromptCharacters}");
        }

        if (StopTokenIds is not null)
        {
            for (int i = 0; i < StopTokenIds.Count; i++)
            {
                if (StopTokenIds[i] < 0)
                {
                    throw new ArgumentOutOfRangeException(nameof(StopTokenIds), StopTokenIds[i], $"StopTokenIds[{i}] must be a token id (0 or more), got {StopTokenIds[i]}");
                }
            }
        }

        for (int i = 0; i < (StopStrings?.Count ?? 0); i++)
        {
            if (string.IsNullOrEmpty(StopStrings![i]))
            {
                throw new ArgumentException($"StopStrings[{i}] is {(StopStrings[i] is null ? "null" : "empty")}: an empty stop string would stop before the first token", nameof(StopStrings));
            }
        }
    }
}
