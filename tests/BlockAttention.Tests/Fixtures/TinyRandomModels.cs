using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;

namespace BlockAttention.Tests.Fixtures;

/// <summary>
/// Random-weight Llama models small enough that thousands of tokens run in well under a second:
/// for limits that need long prompts or long generations, not for numerical agreement with a reference.
/// </summary>
internal static class TinyRandomModels
{
    /// <summary>2 layers, hidden 64, 4 query and 2 KV heads of 16, vocabulary 256, no end-of-sequence token.</summary>
    public static LlamaConfig Config(int maxPositions = 2048) => new()
    {
        VocabSize = 256,
        HiddenSize = 64,
        IntermediateSize = 128,
        NumHiddenLayers = 2,
        NumAttentionHeads = 4,
        NumKeyValueHeads = 2,
        HeadDim = 16,
        RmsNormEps = 1e-5,
        MaxPositionEmbeddings = maxPositions,
        Rope = new RopeSettings { Theta = 10000, Type = RopeType.Default },
        TieWordEmbeddings = true,
        EosTokenIds = [],
    };

    /// <summary>A fresh model (float32, CPU) the caller owns and disposes.</summary>
    public static LlamaModel Create(int maxPositions = 2048, int seed = 0, AttentionImplementation attention = AttentionImplementation.Auto) =>
        LlamaModel.CreateRandom(Config(maxPositions), new LlamaLoadOptions { Attention = attention }, seed);

    /// <summary>Token ids in the vocabulary, reproducible from <paramref name="seed"/>.</summary>
    public static int[] Tokens(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => random.Next(0, 256))];
    }
}
