using BlockAttention.Prompts;
using BlockAttention.Text;

namespace BlockAttention;

/// <summary>A prompt's blocks as token ids, validated against the model's limits.</summary>
internal sealed class TokenizedPrompt
{
    private TokenizedPrompt(IReadOnlyList<int[]> localBlocks, int[] finalBlock)
    {
        LocalBlocks = localBlocks;
        FinalBlock = finalBlock;
        TotalLength = localBlocks.Sum(b => b.Length) + finalBlock.Length;
    }

    public IReadOnlyList<int[]> LocalBlocks { get; }

    public int[] FinalBlock { get; }

    public int TotalLength { get; }

    /// <summary>Tokenizes each block on its own (no BOS) and checks the prompt fits the model.</summary>
    /// <exception cref="ArgumentException">The final block is empty, or the prompt is longer than <paramref name="maxPositions"/>.</exception>
    public static TokenizedPrompt Create(BlockPrompt prompt, ITextTokenizer? tokenizer, int maxPositions)
    {
        var blocks = prompt.Blocks.Select(b => b.Tokens is { } ids ? ids.ToArray() : Encode(b.Text!, tokenizer)).ToList();
        var request = new TokenizedPrompt(blocks.Take(blocks.Count - 1).ToList(), blocks[^1]);
        if (request.FinalBlock.Length == 0)
        {
            throw new ArgumentException("the final block is empty: it must hold at least one token (the question)", nameof(prompt));
        }

        if (request.TotalLength > maxPositions)
        {
            throw new ArgumentException($"the prompt has {request.TotalLength} tokens, more than the model's {maxPositions} positions", nameof(prompt));
        }

        return request;
    }

    internal static int[] Encode(string text, ITextTokenizer? tokenizer) => tokenizer is null
        ? throw new InvalidOperationException("the model has no tokenizer: give the prompt's blocks as token ids")
        : [.. tokenizer.Encode(text)];

    public int[] AllTokens() => [.. LocalBlocks.SelectMany(b => b), .. FinalBlock];

    public IReadOnlyList<int> BlockLengths() => [.. LocalBlocks.Select(b => b.Length), FinalBlock.Length];
}
