namespace BlockAttention.Llama.Checkpoints;

/// <summary>
/// The shape and hyperparameters of a Llama model, from a Hugging Face <c>config.json</c>.
/// </summary>
/// <remarks>
/// <para>
/// Defaults follow <c>transformers</c>' <c>LlamaConfig</c> (the reference): <c>num_key_value_heads</c>
/// defaults to <c>num_attention_heads</c>, <c>head_dim</c> to <c>hidden_size / num_attention_heads</c>,
/// <c>tie_word_embeddings</c> to <see langword="false"/>, <c>rope_theta</c> to 10000. Keys that
/// decide the shape of the weights have no default here: a config without them is rejected.
/// </para>
/// <para>
/// Values the forward pass does not implement (another <c>model_type</c>, activation or RoPE
/// scaling) are rejected when parsed, with a <see cref="CheckpointFormatException"/> that names the
/// key and the value, rather than ignored.
/// </para>
/// </remarks>
public sealed record LlamaConfig
{
    /// <summary>The only <c>model_type</c> accepted.</summary>
    public const string ModelType = "llama";

    /// <summary>The number of token ids (<c>vocab_size</c>): rows of the embedding and of <c>lm_head</c>.</summary>
    public required int VocabSize { get; init; }

    /// <summary>The width of the residual stream (<c>hidden_size</c>).</summary>
    public required int HiddenSize { get; init; }

    /// <summary>The width of the MLP's gate and up projections (<c>intermediate_size</c>).</summary>
    public required int IntermediateSize { get; init; }

    /// <summary>The number of decoder layers (<c>num_hidden_layers</c>).</summary>
    public required int NumHiddenLayers { get; init; }

    /// <summary>The number of query heads (<c>num_attention_heads</c>).</summary>
    public required int NumAttentionHeads { get; init; }

    /// <summary>The number of key/value heads (<c>num_key_value_heads</c>); fewer than <see cref="NumAttentionHeads"/> means grouped-query attention.</summary>
    public required int NumKeyValueHeads { get; init; }

    /// <summary>The width of one attention head (<c>head_dim</c>, else <c>hidden_size / num_attention_heads</c>).</summary>
    public required int HeadDim { get; init; }

    /// <summary>The epsilon added to the mean square in RMSNorm (<c>rms_norm_eps</c>).</summary>
    public required double RmsNormEps { get; init; }

    /// <summary>The longest context the model was configured for (<c>max_position_embeddings</c>).</summary>
    public required int MaxPositionEmbeddings { get; init; }

    /// <summary>The rotary position embedding.</summary>
    public required RopeSettings Rope { get; init; }

    /// <summary>Whether <c>lm_head</c> reuses the token embedding (<c>tie_word_embeddings</c>); the checkpoint then has no <c>lm_head.weight</c>.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>Whether the q/k/v/o projections have biases (<c>attention_bias</c>).</summary>
    public bool AttentionBias { get; init; }

    /// <summary>Whether the MLP projections have biases (<c>mlp_bias</c>).</summary>
    public bool MlpBias { get; init; }

    /// <summary>The beginning-of-sequence token id (<c>bos_token_id</c>), if the config names one.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>The end-of-sequence token ids (<c>eos_token_id</c>, one id or a list); empty if the config names none.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>The dtype the weights were saved in (<c>dtype</c>, or the older <c>torch_dtype</c>), e.g. <c>bfloat16</c>; informational.</summary>
    public string? DType { get; init; }

    /// <summary>Reads and validates <paramref name="path"/>.</summary>
    /// <param name="path">A <c>config.json</c> file.</param>
    /// <param name="limits">The largest file accepted (default: <see cref="CheckpointFileLimits.Default"/>).</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="BlockAttention.IO.InputFileException">The path is not a regular file, or the file is over <see cref="CheckpointFileLimits.ConfigJsonBytes"/>.</exception>
    /// <exception cref="CheckpointFormatException">The file is not valid JSON, lacks a required key, has a key of the wrong type or out of range, or asks for something unsupported.</exception>
    public static LlamaConfig Load(string path, CheckpointFileLimits? limits = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        byte[] json = ConfigObject.ReadFile(fullPath, CheckpointFolder.ConfigFileName, limits);
        return ConfigObject.Read(json, fullPath, Read);
    }

    /// <summary>Parses and validates the text of a <c>config.json</c>.</summary>
    /// <param name="json">The file's content.</param>
    /// <param name="sourcePath">Where it came from, for error messages.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="CheckpointFormatException">The text is not valid JSON, lacks a required key, has a key of the wrong type or out of range, or asks for something unsupported.</exception>
    public static LlamaConfig Parse(string json, string sourcePath)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(sourcePath);
        return ConfigObject.Read(json, sourcePath, Read);
    }

    private static LlamaConfig Read(ConfigObject root)
    {
        string modelType = root.GetString("model_type");
        if (modelType != ModelType)
        {
            throw root.Invalid("model_type", $"is '{modelType}'; only '{ModelType}' is supported");
        }

        // transformers defaults hidden_act to silu; Llama checkpoints never use another.
        string activation = root.GetOptionalString("hidden_act") ?? "silu";
        if (activation != "silu")
        {
            throw root.Invalid("hidden_act", $"is '{activation}'; only 'silu' is supported");
        }

        // Every size is read before the checks that combine them, so a missing or mistyped size is
        // reported as such rather than as an inconsistency between sizes.
        int vocabSize = Positive(root, "vocab_size");
        int hiddenSize = Positive(root, "hidden_size");
        int intermediateSize = Positive(root, "intermediate_size");
        int layers = Positive(root, "num_hidden_layers");
        int heads = Positive(root, "num_attention_heads");
        int kvHeads = root.Has("num_key_value_heads") ? Positive(root, "num_key_value_heads") : heads;
        if (heads % kvHeads != 0)
        {
            throw root.Invalid("num_key_value_heads", $"is {kvHeads}, which does not divide num_attention_heads ({heads})");
        }

        int headDim;
        if (root.Has("head_dim"))
        {
            headDim = Positive(root, "head_dim");
        }
        else if (hiddenSize % heads == 0)
        {
            headDim = hiddenSize / heads;
        }
        else
        {
            throw root.Invalid("hidden_size", $"is {hiddenSize}, which num_attention_heads ({heads}) does not divide, and there is no head_dim");
        }

        if (headDim % 2 != 0)
        {
            // Rotary embeddings rotate pairs of dimensions.
            throw root.Invalid(root.Has("head_dim") ? "head_dim" : "hidden_size", $"gives an odd head_dim ({headDim}); rotary embeddings need an even one");
        }

        // Added to a mean of squares before its square root: it must be small and positive. 1 is
        // already far above any real model's (1e-6 to 1e-5).
        double eps = root.GetOptionalDoubleInRange("rms_norm_eps", 0, MaxRmsNormEps) ?? root.GetDouble("rms_norm_eps");

        return new LlamaConfig
        {
            VocabSize = vocabSize,
            HiddenSize = hiddenSize,
            IntermediateSize = intermediateSize,
            NumHiddenLayers = layers,
            NumAttentionHeads = heads,
            NumKeyValueHeads = kvHeads,
            HeadDim = headDim,
            RmsNormEps = eps,
            MaxPositionEmbeddings = Positive(root, "max_position_embeddings"),
            Rope = RopeSettingsReader.Read(root),
            TieWordEmbeddings = root.GetOptionalBoolean("tie_word_embeddings") ?? false,
            AttentionBias = root.GetOptionalBoolean("attention_bias") ?? false,
            MlpBias = root.GetOptionalBoolean("mlp_bias") ?? false,
            BosTokenId = root.GetOptionalTokenId("bos_token_id"),
            EosTokenIds = root.GetTokenIdOrList("eos_token_id"),
            DType = root.GetOptionalString("dtype") ?? root.GetOptionalString("torch_dtype"),
        };
    }

    /// <summary>The largest <c>rms_norm_eps</c> accepted.</summary>
    internal const double MaxRmsNormEps = 1.0;

    private static int Positive(ConfigObject root, string key)
    {
        int value = root.GetInt32(key);
        return value > 0 ? value : throw root.Invalid(key, $"is {value}, expected a positive integer");
    }
}
