using System.Globalization;
using System.IO.Hashing;
using System.Text;
using BlockAttention.Llama.Checkpoints;

namespace BlockAttention.Llama;

public sealed partial class LlamaModel
{
    /// <summary>
    /// Builds a model of preset <paramref name="preset"/> (see <see cref="LlamaPresets"/>) with
    /// random weights, in memory, without any download. For benchmarks: time to first token does
    /// not depend on the values of the weights. The model has no tokenizer, so prompts are token ids.
    /// </summary>
    /// <param name="preset">A name from <see cref="LlamaPresets.Names"/>, e.g. <c>llama-3.1-8b</c>.</param>
    /// <param name="options">Device and dtype; the weights are made there directly, tensor by tensor.</param>
    /// <param name="seed">The same seed, preset, dtype and device give the same weights and the same fingerprint.</param>
    /// <exception cref="ArgumentException">Unknown preset, device or dtype.</exception>
    public static LlamaModel CreateRandom(string preset, LlamaLoadOptions? options = null, int seed = 0) =>
        CreateRandom(LlamaPresets.Get(preset), options, seed);

    /// <summary>Builds a model of shape <paramref name="config"/> with random weights; see <see cref="CreateRandom(string, LlamaLoadOptions?, int)"/>.</summary>
    /// <exception cref="ArgumentException">The config asks for biases, or the device or dtype is not supported.</exception>
    public static LlamaModel CreateRandom(LlamaConfig config, LlamaLoadOptions? options = null, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(config);
        options ??= new LlamaLoadOptions();
        if (config.AttentionBias || config.MlpBias)
        {
            throw new ArgumentException("Llama projections with biases are not supported", nameof(config));
        }

        var dtype = ValidateDType(options.DType);
        var device = ParseDevice(options.Device);
        // The weights are a function of the shape, the seed and the init: hash exactly those. Build
        // adds dtype and device kind to the fingerprint's text.
        var fingerprint = new XxHash128();
        fingerprint.Append(Encoding.UTF8.GetBytes(DescribeForFingerprint(config, seed)));
        using var weights = new RandomWeightSource(dtype, device, seed);
        return Build(config, weights, tokenizer: null, dtype, device, fingerprint, options.Attention);
    }

    // Everything that shapes the weights or the KV states they produce, formatted culture-free.
    private static string DescribeForFingerprint(LlamaConfig config, int seed)
    {
        var rope = config.Rope;
        return string.Create(CultureInfo.InvariantCulture,
            $"random-weights;std={RandomWeightSource.StandardDeviation:R};seed={seed};vocab={config.VocabSize};hidden={config.HiddenSize};" +
            $"intermediate={config.IntermediateSize};layers={config.NumHiddenLayers};heads={config.NumAttentionHeads};kv={config.NumKeyValueHeads};" +
            $"head_dim={config.HeadDim};eps={config.RmsNormEps:R};tied={config.TieWordEmbeddings};rope={rope.Type},{rope.Theta:R},{rope.Factor:R}," +
            $"{rope.LowFreqFactor:R},{rope.HighFreqFactor:R},{rope.OriginalMaxPositionEmbeddings}");
    }
}
