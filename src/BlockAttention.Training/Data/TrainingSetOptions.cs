namespace BlockAttention.Training.Data;

/// <summary>How <see cref="TrainingSetBuilder"/> turns text into samples.</summary>
public sealed class TrainingSetOptions
{
    /// <summary>Samples longer than this many tokens (in their full-attention form) are dropped and counted. The reference uses 4096.</summary>
    public int MaxLength { get; set; } = 4096;

    /// <summary>Plain text put in front of the first block of block-attention copies only (labelled as prompt); empty for none.</summary>
    public string BlockPrefix { get; set; } = "[Block-Attention]";

    /// <summary>The text that ends every response (tokenized as the tokenizer's special token when it has one).</summary>
    public string EndOfText { get; set; } = ChatSampleSplitter.EndOfText;

    /// <summary>Whether to emit the full-attention copy of each sample.</summary>
    public bool IncludeFullCopy { get; set; } = true;

    /// <summary>Whether to emit the block-attention copy of each sample.</summary>
    public bool IncludeBlockCopy { get; set; } = true;

    /// <summary>Seed of the shuffle of the finished set; null keeps the input order (block copy, then full copy, per example).</summary>
    public int? ShuffleSeed { get; set; } = 42;

    /// <summary>Throws when an option is out of range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">MaxLength is below 2, or no copy is asked for.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxLength, 2, nameof(MaxLength));
        ArgumentNullException.ThrowIfNull(BlockPrefix);
        ArgumentNullException.ThrowIfNull(EndOfText);
        if (!IncludeFullCopy && !IncludeBlockCopy)
        {
            throw new ArgumentOutOfRangeException(nameof(IncludeBlockCopy), "at least one of the block and the full copy is needed");
        }
    }
}
