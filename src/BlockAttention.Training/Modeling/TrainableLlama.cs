using BlockAttention.Runtime;
using BlockAttention.Attention;
using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BlockAttention.Training.Modeling;

/// <summary>
/// A Llama model whose weights are float32 leaf tensors with gradients, under the Hugging Face
/// names, and a differentiable forward pass over one sample with any attention mask. The
/// arithmetic follows the inference forward (and transformers): RMSNorm in float32 with the weight
/// applied after the cast back, RoPE from float32 angles with the half-split rotation, grouped KV
/// heads, SiLU-gated MLP; softmax in float32.
/// </summary>
/// <remarks>
/// With <see cref="ComputeDType"/> bfloat16 the forward casts each weight to bfloat16 (the cast is
/// part of the graph), so the float32 weights are master copies and the optimizer updates them in
/// float32: the usual mixed-precision recipe.
/// </remarks>
public sealed class TrainableLlama : IDisposable
{
    private readonly Dictionary<string, Tensor> _parameters;
    private readonly RotaryEmbedding _rotary;

    private TrainableLlama(LlamaConfig config, Dictionary<string, Tensor> parameters, Device device, string? sourceDirectory)
    {
        Config = config;
        _parameters = parameters;
        Device = device;
        SourceDirectory = sourceDirectory;
        _rotary = LlamaModel.CreateRotary(config);
    }

    /// <summary>The model's configuration.</summary>
    public LlamaConfig Config { get; }

    /// <summary>Where the weights live.</summary>
    public Device Device { get; }

    /// <summary>The checkpoint folder the model was loaded from, or null for a new model.</summary>
    public string? SourceDirectory { get; }

    /// <summary>The dtype of the forward pass: float32 (default) or bfloat16.</summary>
    public ScalarType ComputeDType { get; set; } = ScalarType.Float32;

    /// <summary>The weights, by Hugging Face name, in checkpoint order. A tied model has no <c>lm_head.weight</c>.</summary>
    public IReadOnlyDictionary<string, Tensor> Parameters => _parameters;

    /// <summary>The names of the weights of <paramref name="config"/>, in the order a checkpoint lists them.</summary>
    public static IReadOnlyList<(string Name, long[] Shape)> ParameterShapes(LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        long hidden = config.HiddenSize, q = (long)config.NumAttentionHeads * config.HeadDim, kv = (long)config.NumKeyValueHeads * config.HeadDim;
        var list = new List<(string, long[])> { ("model.embed_tokens.weight", [config.VocabSize, hidden]) };
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            string p = $"model.layers.{i}.";
            list.Add((p + "input_layernorm.weight", [hidden]));
            list.Add((p + "self_attn.q_proj.weight", [q, hidden]));
            list.Add((p + "self_attn.k_proj.weight", [kv, hidden]));
            list.Add((p + "self_attn.v_proj.weight", [kv, hidden]));
            list.Add((p + "self_attn.o_proj.weight", [hidden, q]));
            list.Add((p + "post_attention_layernorm.weight", [hidden]));
            list.Add((p + "mlp.gate_proj.weight", [config.IntermediateSize, hidden]));
            list.Add((p + "mlp.up_proj.weight", [config.IntermediateSize, hidden]));
            list.Add((p + "mlp.down_proj.weight", [hidden, config.IntermediateSize]));
        }

        list.Add(("model.norm.weight", [hidden]));
        if (!config.TieWordEmbeddings)
        {
            list.Add(("lm_head.weight", [config.VocabSize, hidden]));
        }

        return list;
    }

    /// <summary>Loads a Hugging Face checkpoint folder (the same files <see cref="LlamaModel.Load"/> reads) as float32 trainable weights.</summary>
    /// <exception cref="CheckpointFormatException">The checkpoint is malformed or not a supported Llama.</exception>
    public static TrainableLlama Load(string directory, string device = "cpu")
    {
        var target = LlamaModel.ParseDevice(device);
        using var checkpoint = CheckpointFolder.Open(directory);
        var config = checkpoint.Config;
        if (config.AttentionBias || config.MlpBias)
        {
            throw new CheckpointFormatException($"{checkpoint.DirectoryPath}: Llama projections with biases are not supported", checkpoint.DirectoryPath, "attention_bias");
        }

        var reader = new CheckpointTensorReader(checkpoint, ScalarType.Float32, target, new System.IO.Hashing.XxHash128());
        return Create(config, (name, shape) => reader.Read(name, shape), target, checkpoint.DirectoryPath);
    }

    /// <summary>A new model of shape <paramref name="config"/> with the random initialisation of <see cref="LlamaModel.CreateRandom(LlamaConfig, LlamaLoadOptions?, int)"/>.</summary>
    public static TrainableLlama CreateRandom(LlamaConfig config, int seed, string device = "cpu")
    {
        ArgumentNullException.ThrowIfNull(config);
        var target = LlamaModel.ParseDevice(device);
        using var weights = new RandomWeightSource(ScalarType.Float32, target, seed);
        return Create(config, weights.Read, target, null);
    }

    private static TrainableLlama Create(LlamaConfig config, Func<string, long[], Tensor> read, Device device, string? source)
    {
        LlamaModel.ShapeOf(config); // validates the head counts
        var parameters = new Dictionary<string, Tensor>();
        try
        {
            foreach (var (name, shape) in ParameterShapes(config))
            {
                using var loaded = read(name, shape);
                parameters[name] = loaded.detach().clone().requires_grad_(true);
            }
        }
        catch
        {
            foreach (var p in parameters.Values)
            {
                p.Dispose();
            }

            throw;
        }

        return new TrainableLlama(config, parameters, device, source);
    }

    /// <summary>
    /// The float32 logits <c>[S, vocab]</c> of <paramref name="ids"/> at positions <c>0..S-1</c>,
    /// where row i attends to column j only if <paramref name="allowed"/>[i, j] (boolean <c>[S, S]</c>).
    /// The result is part of the autograd graph unless called under <c>no_grad</c>.
    /// </summary>
    public Tensor Forward(ReadOnlySpan<int> ids, Tensor allowed)
    {
        ArgumentNullException.ThrowIfNull(allowed);
        int n = ids.Length;
        if (n == 0 || allowed.ndim != 2 || allowed.shape[0] != n || allowed.shape[1] != n)
        {
            throw new ArgumentException($"the mask must be [{n}, {n}] for {n} tokens");
        }

        var longIds = new long[n];
        for (int i = 0; i < n; i++)
        {
            if ((uint)ids[i] >= (uint)Config.VocabSize)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), $"token id {ids[i]} at index {i} is outside the vocabulary (0..{Config.VocabSize - 1})");
            }

            longIds[i] = ids[i];
        }

        if (n > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"{n} positions exceed the model's maximum of {Config.MaxPositionEmbeddings}", nameof(ids));
        }

        using var scope = NewDisposeScope();
        using var angles = _rotary.Angles(0, n, Device, ComputeDType);
        var tokenIds = tensor(longIds, ScalarType.Int64, Device);
        var x = W("model.embed_tokens.weight").index_select(0, tokenIds);
        var blocked = allowed.to(ScalarType.Bool, Device).logical_not();
        for (int i = 0; i < Config.NumHiddenLayers; i++)
        {
            string p = $"model.layers.{i}.";
            var h = x.add(Attention(RmsNorm(x, W(p + "input_layernorm.weight")), p, angles, blocked));
            x = h.add(Mlp(RmsNorm(h, W(p + "post_attention_layernorm.weight")), p));
        }

        var head = W(Config.TieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
        var logits = F.linear(RmsNorm(x, W("model.norm.weight")), head);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The sum over the sample's labelled tokens of the token-shifted cross-entropy (logit row t
    /// predicts label t + 1), in float32.
    /// </summary>
    public Tensor LossSum(Data.TrainingSample sample)
    {
        ArgumentNullException.ThrowIfNull(sample);
        using var scope = NewDisposeScope();
        var allowed = TrainingMask.Allowed(sample, Device);
        var logits = Forward(sample.InputIds, allowed);
        long n = sample.Length;
        var targets = tensor(sample.Labels.Skip(1).Select(l => (long)l).ToArray(), ScalarType.Int64, Device);
        var loss = F.cross_entropy(logits.narrow(0, 0, n - 1), targets, ignore_index: Data.TrainingSample.IgnoreLabel, reduction: nn.Reduction.Sum);
        return loss.MoveToOuterDisposeScope();
    }

    // The weight in the compute dtype; in float32 the master weight itself.
    private Tensor W(string name)
    {
        var weight = _parameters[name];
        return ComputeDType == ScalarType.Float32 ? weight : weight.to(ComputeDType);
    }

    private Tensor RmsNorm(Tensor x, Tensor weight)
    {
        var x32 = x.to(ScalarType.Float32);
        using var epsilon = Scalars.Of(Config.RmsNormEps);
        var normalised = x32.mul(x32.square().mean([-1], keepdim: true).add(epsilon).rsqrt());
        return weight.mul(normalised.to(x.dtype));
    }

    private Tensor Attention(Tensor x, string p, RotaryAngles angles, Tensor blocked)
    {
        long n = x.shape[0];
        int heads = Config.NumAttentionHeads, kvHeads = Config.NumKeyValueHeads, headDim = Config.HeadDim;
        var q = angles.Apply(F.linear(x, W(p + "self_attn.q_proj.weight")).view(n, heads, headDim)).transpose(0, 1);
        var k = angles.Apply(F.linear(x, W(p + "self_attn.k_proj.weight")).view(n, kvHeads, headDim)).transpose(0, 1);
        var v = F.linear(x, W(p + "self_attn.v_proj.weight")).view(n, kvHeads, headDim).transpose(0, 1);
        int group = heads / kvHeads;
        if (group > 1)
        {
            k = k.repeat_interleave(group, 0);
            v = v.repeat_interleave(group, 0);
        }

        using var scale = Scalars.Of(1.0 / Math.Sqrt(headDim));
        var scores = q.matmul(k.transpose(1, 2)).mul(scale).to(ScalarType.Float32);
        var probabilities = scores.masked_fill(blocked, Scalars.NegativeInfinity).softmax(-1).to(x.dtype);
        var attended = probabilities.matmul(v).transpose(0, 1).reshape(n, heads * headDim);
        return F.linear(attended, W(p + "self_attn.o_proj.weight"));
    }

    private Tensor Mlp(Tensor x, string p) =>
        F.linear(F.silu(F.linear(x, W(p + "mlp.gate_proj.weight"))).mul(F.linear(x, W(p + "mlp.up_proj.weight"))), W(p + "mlp.down_proj.weight"));

    /// <summary>Releases the weights.</summary>
    public void Dispose()
    {
        foreach (var p in _parameters.Values)
        {
            p.Dispose();
        }

        _rotary.Dispose();
    }
}
