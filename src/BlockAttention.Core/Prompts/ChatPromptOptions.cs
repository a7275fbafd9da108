namespace BlockAttention.Prompts;

/// <summary>Options for rendering a conversation into blocks.</summary>
public sealed record ChatPromptOptions
{
    /// <summary>
    /// Puts the format's beginning-of-text token (<c>&lt;|begin_of_text|&gt;</c>) before the first
    /// turn, as Hugging Face chat templates do. Default false: the Block-Attention reference adds
    /// none, and the block-fine-tuned checkpoints were trained without it.
    /// </summary>
    public bool AddBeginningOfText { get; init; }
}
