using BlockAttention.Generation;

namespace BlockAttention.Cli.Verify;

/// <summary>
/// One case of a <c>golden.json</c>: a prompt as blocks of token ids (the last is the final block)
/// and the reference's outputs for it in full and in block attention.
/// </summary>
internal sealed record GoldenCase
{
    public required string Name { get; init; }

    /// <summary>Where the case sits in the file, for messages: <c>cases[i]</c>.</summary>
    public required string Key { get; init; }

    public required int[][] Blocks { get; init; }

    /// <summary>Prompt positions whose logits the reference stored, ascending.</summary>
    public required int[] LogitsKeptPositions { get; init; }

    public required GreedyReference Full { get; init; }

    public required GreedyReference Block { get; init; }

    /// <summary>Where block 1 starts in the prompt, when the case stores block 1's layer-0 keys.</summary>
    public int? Block1Offset { get; init; }

    public int TotalLength => Blocks.Sum(b => b.Length);

    public int[] FinalBlock => Blocks[^1];

    public int[] AllTokens() => [.. Blocks.SelectMany(b => b)];

    public GreedyReference Reference(AttentionMode mode) => mode == AttentionMode.Full ? Full : Block;

    /// <summary>The name of the reference logits tensor in <c>golden.safetensors</c>.</summary>
    public string LogitsTensor(AttentionMode mode) => $"{Name}.{(mode == AttentionMode.Full ? "full" : "block")}.logits";
}

/// <summary>The reference's greedy tokens after the prompt and, per step, the gap between its best and second-best logit.</summary>
internal sealed record GreedyReference(int[] Tokens, double[] Margins);
