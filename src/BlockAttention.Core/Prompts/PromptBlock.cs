namespace BlockAttention.Prompts;

/// <summary>One block of a prompt: text to be tokenized on its own, or token ids given directly.</summary>
public sealed class PromptBlock
{
    private PromptBlock(string? text, int[]? tokens)
    {
        Text = text;
        Tokens = tokens;
    }

    /// <summary>The block's text, or null when it was given as token ids.</summary>
    public string? Text { get; }

    /// <summary>The block's token ids, or null when it is text still to be tokenized.</summary>
    public IReadOnlyList<int>? Tokens { get; }

    /// <summary>A block of text, tokenized on its own without BOS or EOS.</summary>
    public static PromptBlock FromText(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), null);

    /// <summary>A block of token ids, used as given.</summary>
    public static PromptBlock FromTokens(IEnumerable<int> tokens) => new(null, [.. tokens ?? throw new ArgumentNullException(nameof(tokens))]);

    /// <inheritdoc />
    public override string ToString() => Text ?? $"[{Tokens!.Count} tokens]";
}
