using BlockAttention.Prompts;

namespace BlockAttention.Cli.Bench;

/// <summary>
/// A RAG prompt shaped like the paper's, as token ids: an instruction block, passages of about
/// 300 tokens, and a 50-token final block (the question), adding up to an exact total length.
/// The passages are fixed for a length; each request gets its own question, as a server would.
/// </summary>
/// <remarks>
/// Ids are drawn from a seeded generator within the ordinary part of the vocabulary (below the
/// special tokens of Llama 3), so the same seed gives the same prompts on every machine.
/// </remarks>
internal sealed class BenchPrompt
{
    public const int InstructionTokens = 38;
    public const int PassageTokens = 300;
    public const int FinalTokens = 50;
    public const int MinimumLength = InstructionTokens + FinalTokens + 1;

    private readonly int _lowId;
    private readonly int _highId;
    private readonly int _seed;

    private BenchPrompt(int length, int[] instruction, int[][] passages, int lowId, int highId, int seed)
    {
        Length = length;
        Instruction = instruction;
        Passages = passages;
        _lowId = lowId;
        _highId = highId;
        _seed = seed;
    }

    public int Length { get; }

    public int[] Instruction { get; }

    public IReadOnlyList<int[]> Passages { get; }

    /// <summary>The local blocks in prompt order: the instruction, then the passages.</summary>
    public IEnumerable<int[]> LocalBlocks => [Instruction, .. Passages];

    /// <summary>Tokens before the final block: what block mode takes from the store.</summary>
    public int CachedTokens => Length - FinalTokens;

    /// <summary>
    /// Splits <paramref name="length"/> tokens into the instruction, the final block and the
    /// nearest whole number of ~300-token passages, sized within one token of each other.
    /// </summary>
    public static BenchPrompt Create(int length, int vocabSize, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, MinimumLength);
        int lowId = Math.Min(256, vocabSize / 2);
        int highId = Math.Min(vocabSize, 128000);
        var random = new Random(unchecked(seed * 7919 + length));
        int passageTotal = length - InstructionTokens - FinalTokens;
        int count = Math.Max(1, (int)Math.Round(passageTotal / (double)PassageTokens));
        var passages = new int[count][];
        for (int i = 0; i < count; i++)
        {
            int size = passageTotal / count + (i < passageTotal % count ? 1 : 0);
            passages[i] = Ids(random, size, lowId, highId);
        }

        return new BenchPrompt(length, Ids(random, InstructionTokens, lowId, highId), passages, lowId, highId, seed);
    }

    /// <summary>The final block of request <paramref name="request"/>: a different question each time.</summary>
    public int[] Question(int request) => Ids(new Random(unchecked(_seed * 104729 + Length * 31 + request + 1)), FinalTokens, _lowId, _highId);

    /// <summary>The whole prompt of request <paramref name="request"/>.</summary>
    public BlockPrompt ForRequest(int request) => BlockPrompt.FromTokenizedBlocks([.. LocalBlocks, Question(request)]);

    private static int[] Ids(Random random, int count, int lowId, int highId)
    {
        var ids = new int[count];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = random.Next(lowId, highId);
        }

        return ids;
    }
}
