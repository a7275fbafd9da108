using System.Diagnostics.CodeAnalysis;
using BlockAttention.Llama.Checkpoints;

namespace BlockAttention.Llama;

/// <summary>
/// The shapes of published Llama-family checkpoints, as the <c>config.json</c> of each gives them,
/// for <see cref="LlamaModel.CreateRandom(string, LlamaLoadOptions?, int)"/>: benchmarks need the
/// shape of a model, not its weights, because time to first token does not depend on weight values.
/// </summary>
public static class LlamaPresets
{
    /// <summary>Llama 3.1 8B: 32 layers, hidden 4096, 32 query and 8 KV heads, llama3 RoPE (factor 8).</summary>
    public const string Llama31_8B = "llama-3.1-8b";

    /// <summary>Llama 3.2 1B: 16 layers, hidden 2048, head_dim 64, tied embeddings, llama3 RoPE (factor 32).</summary>
    public const string Llama32_1B = "llama-3.2-1b";

    /// <summary>SmolLM2 135M: 30 layers, hidden 576, 9 query and 3 KV heads, tied embeddings, plain RoPE.</summary>
    public const string SmolLM2_135M = "smollm2-135m";

    private static readonly Dictionary<string, LlamaConfig> s_presets = new(StringComparer.OrdinalIgnoreCase)
    {
        [Llama31_8B] = new LlamaConfig
        {
            VocabSize = 128256,
            HiddenSize = 4096,
            IntermediateSize = 14336,
            NumHiddenLayers = 32,
            NumAttentionHeads = 32,
            NumKeyValueHeads = 8,
            HeadDim = 128,
            RmsNormEps = 1e-5,
            MaxPositionEmbeddings = 131072,
            Rope = Llama3Rope(factor: 8),
            TieWordEmbeddings = false,
            BosTokenId = 128000,
            EosTokenIds = [128001],
            DType = "bfloat16",
        },
        [Llama32_1B] = new LlamaConfig
        {
            VocabSize = 128256,
            HiddenSize = 2048,
            IntermediateSize = 8192,
            NumHiddenLayers = 16,
            NumAttentionHeads = 32,
            NumKeyValueHeads = 8,
            HeadDim = 64,
            RmsNormEps = 1e-5,
            MaxPositionEmbeddings = 131072,
            Rope = Llama3Rope(factor: 32),
            TieWordEmbeddings = true,
            BosTokenId = 128000,
            EosTokenIds = [128001],
            DType = "bfloat16",
        },
        [SmolLM2_135M] = new LlamaConfig
        {
            VocabSize = 49152,
            HiddenSize = 576,
            IntermediateSize = 1536,
            NumHiddenLayers = 30,
            NumAttentionHeads = 9,
            NumKeyValueHeads = 3,
            HeadDim = 64,
            RmsNormEps = 1e-5,
            MaxPositionEmbeddings = 8192,
            Rope = new RopeSettings { Theta = 100000, Type = RopeType.Default },
            TieWordEmbeddings = true,
            BosTokenId = 0,
            EosTokenIds = [0],
            DType = "bfloat16",
        },
    };

    /// <summary>The preset names, in the order listed above.</summary>
    public static IReadOnlyList<string> Names { get; } = [Llama31_8B, Llama32_1B, SmolLM2_135M];

    /// <summary>The config of preset <paramref name="name"/> (case-insensitive).</summary>
    /// <exception cref="ArgumentException">No preset has that name; the message lists those that exist.</exception>
    public static LlamaConfig Get(string name) => TryGet(name, out var config)
        ? config
        : throw new ArgumentException($"unknown model preset '{name}'; known presets: {string.Join(", ", Names)}", nameof(name));

    /// <summary>Looks up preset <paramref name="name"/> (case-insensitive).</summary>
    public static bool TryGet(string name, [NotNullWhen(true)] out LlamaConfig? config)
    {
        ArgumentNullException.ThrowIfNull(name);
        return s_presets.TryGetValue(name, out config);
    }

    // Llama 3.x share theta, the band limits and the original context; only the factor differs.
    private static RopeSettings Llama3Rope(double factor) => new()
    {
        Theta = 500000,
        Type = RopeType.Llama3,
        Factor = factor,
        LowFreqFactor = 1,
        HighFreqFactor = 4,
        OriginalMaxPositionEmbeddings = 8192,
    };
}
