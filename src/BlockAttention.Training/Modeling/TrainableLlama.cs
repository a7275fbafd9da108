using BlockAttention.Attention;
using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Runtime;
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
    private readonly Dictionary<string, Tensor> _adapters = [];
    private double _loraScale;
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

    /// <summary>
    /// The LoRA adapters by name (<c>{projection}.lora_A.weight</c> <c>[rank, in]</c> and
    /// <c>{projection}.lora_B.weight</c> <c>[out, rank]</c>, beside the projection's own name); empty without LoRA.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> Adapters => _adapters;

    /// <summary>The LoRA settings in force, or null when every weight trains.</summary>
    public LoraOptions? Lora { get; private set; }

    /// <summary>The tensors an optimizer updates: the adapters under LoRA, otherwise every weight.</summary>
    public IReadOnlyDictionary<string, Tensor> TrainableParameters => Lora is null ? _parameters : _adapters;

    /// <summary>
    /// Adds LoRA adapters to the <see cref="LoraOptions.Targets"/> projections of every layer and
    /// freezes the weights: from now on only <see cref="Adapters"/> get gradients. <c>A</c> is drawn
    /// uniformly from <c>[-1/sqrt(in), 1/sqrt(in)]</c> (peft's default), <c>B</c> is zero.
    /// </summary>
    /// <exception cref="InvalidOperationException">The model already has adapters.</exception>
    public void EnableLora(LoraOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (Lora is not null)
        {
            throw new InvalidOperationException("the model already has LoRA adapters");
        }

        using var generator = new TorchSharp.torch.Generator((ulong)options.Seed);
        foreach (var (name, shape) in ParameterShapes(Config))
        {
            string projection = name[..^".weight".Length];
            if (!options.Targets.Any(t => projection.EndsWith("." + t, StringComparison.Ordinal)))
            {
                continue;
            }

            double bound = 1 / Math.Sqrt(shape[1]);
            using var a = rand([options.Rank, shape[1]], ScalarType.Float32, generator: generator);
            using var width = Scalars.Of(2 * bound);
            using var shift = Scalars.Of(bound);
            using var scaled = a.mul(width);
            using var centred = scaled.sub(shift);
            _adapters[projection + ".lora_A.weight"] = centred.to(Device).requires_grad_(true);
            _adapters[projection + ".lora_B.weight"] = zeros([shape[0], options.Rank], ScalarType.Float32, Device).requires_grad_(true);
        }

        foreach (var p in _parameters.Values)
        {
            p.requires_grad_(false);
        }

        _loraScale = options.Alpha / options.Rank;
        Lora = options;
    }

    /// <summary>
    /// The weights to save: <see cref="Parameters"/>, with each adapted projection replaced by its
    /// merged weight <c>W + Alpha / Rank * B A</c> (new tensors, made in the caller's dispose scope).
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> MergedWeights()
    {
        if (Lora is null)
        {
            return _parameters;
        }

        using var noGrad = no_grad();
        using var scale = Scalars.Of(_loraScale);
        var merged = new Dictionary<string, Tensor>();
        foreach (var (name, weight) in _parameters)
        {
            string projection = name[..^".weight".Length];
            merged[name] = _adapters.TryGetValue(projection + ".lora_B.weight", out var b)
                ? weight.add(b.matmul(_adapters[projection + ".lora_A.weight"]), scale)
                : weight;
        }

        return merged;
    }

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

        using var scope = NewDisposeScope();
        var logits = ForwardCore(TokenTensor([ids.ToArray()], n), allowed.unsqueeze(0));
        return logits.squeeze(0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The float32 logits <c>[B, S, vocab]</c> of a batch of sequences in one pass, each at
    /// positions <c>0..</c>, right-padded to the longest (<c>S</c>); <paramref name="allowed"/> is the
    /// boolean <c>[B, S, S]</c> mask (see <see cref="TrainingMask.Allowed(IReadOnlyList{int}, IReadOnlyList{IReadOnlyList{int}}, Device)"/>).
    /// Rows past a sequence's end are padding: their logits mean nothing.
    /// </summary>
    public Tensor ForwardBatch(IReadOnlyList<IReadOnlyList<int>> ids, Tensor allowed)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(allowed);
        int width = ids.Count == 0 ? 0 : ids.Max(s => s.Count);
        if (ids.Count == 0 || width == 0 || allowed.ndim != 3 || allowed.shape[0] != ids.Count || allowed.shape[1] != width || allowed.shape[2] != width)
        {
            throw new ArgumentException($"the mask must be [{ids.Count}, {width}, {width}] for {ids.Count} non-empty sequences of at most {width} tokens");
        }

        using var scope = NewDisposeScope();
        return ForwardCore(TokenTensor(ids, width), allowed).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The sum over the sample's labelled tokens of the token-shifted cross-entropy (logit row t
    /// predicts label t + 1), in float32.
    /// </summary>
    public Tensor LossSum(Data.TrainingSample sample)
    {
        ArgumentNullException.ThrowIfNull(sample);
        return LossSum([sample]);
    }

    /// <summary>
    /// The summed token-shifted cross-entropy of every labelled token of <paramref name="samples"/>,
    /// computed in one padded forward pass (each sample with its own mask; padding is never a label).
    /// </summary>
    public Tensor LossSum(IReadOnlyList<Data.TrainingSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0)
        {
            throw new ArgumentException("no samples", nameof(samples));
        }

        using var scope = NewDisposeScope();
        var allowed = TrainingMask.Allowed(samples, Device);
        var logits = ForwardBatch([.. samples.Select(s => s.InputIds)], allowed);
        long width = logits.shape[1];
        var targets = new long[samples.Count * (width - 1)];
        Array.Fill(targets, Data.TrainingSample.IgnoreLabel);
        for (int b = 0; b < samples.Count; b++)
        {
            var labels = samples[b].Labels;
            for (int t = 1; t < labels.Length; t++)
            {
                targets[(b * (width - 1)) + t - 1] = labels[t];
            }
        }

        if (width < 2)
        {
            return zeros(1, ScalarType.Float32, Device).sum().MoveToOuterDisposeScope();
        }

        var shifted = logits.narrow(1, 0, width - 1).reshape(-1, logits.shape[2]);
        var loss = F.cross_entropy(shifted, tensor(targets, ScalarType.Int64, Device), ignore_index: Data.TrainingSample.IgnoreLabel, reduction: nn.Reduction.Sum);
        return loss.MoveToOuterDisposeScope();
    }

    private Tensor TokenTensor(IReadOnlyList<IReadOnlyList<int>> ids, int width)
    {
        if (width > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"{width} positions exceed the model's maximum of {Config.MaxPositionEmbeddings}", nameof(ids));
        }

        var longIds = new long[ids.Count * (long)width];
        for (int b = 0; b < ids.Count; b++)
        {
            var sequence = ids[b];
            if (sequence.Count == 0)
            {
                throw new ArgumentException($"sequence {b} is empty", nameof(ids));
            }

            for (int i = 0; i < sequence.Count; i++)
            {
                if ((uint)sequence[i] >= (uint)Config.VocabSize)
                {
                    throw new ArgumentOutOfRangeException(nameof(ids), $"token id {sequence[i]} at index {i} is outside the vocabulary (0..{Config.VocabSize - 1})");
                }

                longIds[(b * (long)width) + i] = sequence[i];
            }
        }

        return tensor(longIds, [ids.Count, width], ScalarType.Int64, Device);
    }

    // ids [B, S], allowed [B, S, S] -> float32 logits [B, S, vocab]; positions 0..S-1 in every row.
    private Tensor ForwardCore(Tensor tokenIds, Tensor allowed)
    {
        using var scope = NewDisposeScope();
        long n = tokenIds.shape[1];
        using var angles = _rotary.Angles(0, n, Device, ComputeDType);
        var x = W("model.embed_tokens.weight").index_select(0, tokenIds.flatten()).view(tokenIds.shape[0], n, Config.HiddenSize);
        var blocked = allowed.to(ScalarType.Bool, Device).logical_not().unsqueeze(1);
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

    // The weight in the compute dtype; in float32 the master weight itself.
    private Tensor W(string name)
    {
        var weight = _parameters[name];
        return ComputeDType == ScalarType.Float32 ? weight : weight.to(ComputeDType);
    }

    private Tensor RmsNorm(Tensor x, Tensor weight)
    {
        using var epsilon = Scalars.Of(Config.RmsNormEps);
        var x32 = x.to(ScalarType.Float32);
        var normalised = x32.mul(x32.square().mean([-1], keepdim: true).add(epsilon).rsqrt());
        return weight.mul(normalised.to(x.dtype));
    }

    // x [B, S, hidden]; blocked [B, 1, S, S].
    private Tensor Attention(Tensor x, string p, RotaryAngles angles, Tensor blocked)
    {
        long batch = x.shape[0], n = x.shape[1];
        int heads = Config.NumAttentionHeads, kvHeads = Config.NumKeyValueHeads, headDim = Config.HeadDim;
        var q = angles.Apply(Linear(x, p + "self_attn.q_proj.weight").view(batch, n, heads, headDim)).transpose(1, 2);
        var k = angles.Apply(Linear(x, p + "self_attn.k_proj.weight").view(batch, n, kvHeads, headDim)).transpose(1, 2);
        var v = Linear(x, p + "self_attn.v_proj.weight").view(batch, n, kvHeads, headDim).transpose(1, 2);
        int group = heads / kvHeads;
        if (group > 1)
        {
            k = k.repeat_interleave(group, 1);
            v = v.repeat_interleave(group, 1);
        }

        using var scale = Scalars.Of(1.0 / Math.Sqrt(headDim));
        var scores = q.matmul(k.transpose(2, 3)).mul(scale).to(ScalarType.Float32);
        var probabilities = scores.masked_fill(blocked, Scalars.NegativeInfinity).softmax(-1).to(x.dtype);
        var attended = probabilities.matmul(v).transpose(1, 2).reshape(batch, n, heads * headDim);
        return Linear(attended, p + "self_attn.o_proj.weight");
    }

    private Tensor Mlp(Tensor x, string p) =>
        Linear(F.silu(Linear(x, p + "mlp.gate_proj.weight")).mul(Linear(x, p + "mlp.up_proj.weight")), p + "mlp.down_proj.weight");

    // x W^T, plus the adapter's scaled x A^T B^T where the projection has one.
    private Tensor Linear(Tensor x, string weight)
    {
        var y = F.linear(x, W(weight));
        string projection = weight[..^".weight".Length];
        if (!_adapters.TryGetValue(projection + ".lora_A.weight", out var a))
        {
            return y;
        }

        using var scale = Scalars.Of(_loraScale);
        var b = _adapters[projection + ".lora_B.weight"];
        var update = F.linear(F.linear(x, ComputeDType == ScalarType.Float32 ? a : a.to(ComputeDType)), ComputeDType == ScalarType.Float32 ? b : b.to(ComputeDType));
        return y.add(update, scale);
    }

    /// <summary>Releases the weights.</summary>
    public void Dispose()
    {
        foreach (var p in _parameters.Values.Concat(_adapters.Values))
        {
            p.Dispose();
        }

        _rotary.Dispose();
    }
}
