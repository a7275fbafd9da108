using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Text;

namespace BlockAttention;

/// <summary>A prompt's blocks as token ids, validated against the model's limits.</summary>
internal sealed class TokenizedPrompt
{
    private TokenizedPrompt(IReadOnlyList<int[]> localBlocks, int[] finalBlock, int totalLength)
    {
        LocalBlocks = localBlocks;
        FinalBlock = finalBlock;
        TotalLength = totalLength;
    }

    public IReadOnlyList<int[]> LocalBlocks { get; }

    public int[] FinalBlock { get; }

    public int TotalLength { get; }

    /// <summary>Tokenizes each block on its own (no BOS) and checks the prompt fits the model.</summary>
    /// <param name="prompt">The prompt.</param>
    /// <param name="tokenizer">The model's tokenizer; null when the model has none.</param>
    /// <param name="maxPositions">The model's positions: the most tokens the prompt may have.</param>
    /// <param name="maxCharacters">The most characters the text blocks may hold together, checked before tokenizing any.</param>
    /// <exception cref="ArgumentException">
    /// The text blocks hold more than <paramref name="maxCharacters"/> characters, the final block is empty, or the
    /// prompt is longer than <paramref name="maxPositions"/>.
    /// </exception>
    public static TokenizedPrompt Create(BlockPrompt prompt, ITextTokenizer? tokenizer, int maxPositions, long maxCharacters)
    {
        long characters = prompt.Blocks.Sum(b => (long)(b.Text?.Length ?? 0));
        if (characters > maxCharacters)
        {
            throw new ArgumentException(
                $"the prompt's text has {characters} characters, more than the limit of {maxCharacters} " +
                $"(GenerationOptions.MaxPromptCharacters; by default {GenerationOptions.DefaultPromptCharactersPerPosition} per position of the model)",
                nameof(prompt));
        }

        var blocks = prompt.Blocks.Select(b => b.Tokens is { } ids ? ids.ToArray() : Encode(b.Text!, tokenizer)).ToList();
        if (blocks[^1].Length == 0)
        {
            throw new ArgumentException("the final block is empty: it must hold at least one token (the question)", nameof(prompt));
        }

        // Summed in 64 bits: blocks of token ids given by the caller may add up past int.MaxValue.
        long total = blocks.Sum(b => (long)b.Length);
        if (total > maxPositions)
        {
            throw new ArgumentException($"the prompt has {total} tokens, more than the model's {maxPositions} positions", nameof(prompt));
        }

        return new TokenizedPrompt(blocks.Take(blocks.Count - 1).ToList(), blocks[^1], (int)total);
    }

    internal static int[] Encode(string text, ITextTokenizer? tokenizer) => tokenizer is null
        ? throw new InvalidOperationException("the model has no tokenizer: give the prompt's blocks as token ids")
        : [.. tokenizer.Encode(text)];

    public int[] AllTokens() => [.. LocalBlocks.SelectMany(b => b), .. FinalBlock];

    public IReadOnlyList<int> BlockLengths() => [.. LocalBlocks.Select(b => b.Length), FinalBlock.Length];
}
