using BlockAttention.Llama.Checkpoints;

namespace BlockAttention.Llama;

/// <summary>
/// Checks, before any weight is allocated, that the checkpoint holds every tensor the config implies
/// and with the shape it implies.
/// </summary>
/// <remarks>
/// The sizes in <c>config.json</c> are only claims: a <c>num_hidden_layers</c> of 2^31-1 or a
/// <c>hidden_size</c> of a billion would otherwise ask for memory before the first tensor is looked
/// at. The tensors present are bounded by the files on disk, so once every shape has been matched
/// against them, nothing the load allocates can be larger than the checkpoint itself. Shapes are
/// computed in 64-bit arithmetic. The names follow <see cref="LlamaModel"/>'s loading order.
/// </remarks>
internal static class CheckpointShapeCheck
{
    public static void Verify(LlamaConfig config, CheckpointFolder checkpoint)
    {
        string configPath = Path.Combine(checkpoint.DirectoryPath, CheckpointFolder.ConfigFileName);
        LlamaShape shape = LlamaModel.ShapeOf(config);

        // The last layer first: a layer count far beyond the checkpoint fails here at once rather than
        // after a check per missing layer.
        string lastLayer = $"model.layers.{shape.Layers - 1}.input_layernorm.weight";
        if (!checkpoint.Contains(lastLayer))
        {
            throw new CheckpointFormatException(
                $"{configPath}: num_hidden_layers is {shape.Layers}, but the checkpoint has no '{lastLayer}'", configPath, "num_hidden_layers");
        }

        // Two ints: the product cannot overflow a long.
        long q = (long)shape.Heads * shape.HeadDim, kv = (long)shape.KvHeads * shape.HeadDim;
        Expect(checkpoint, "model.embed_tokens.weight", [shape.Vocab, shape.Hidden]);
        for (int i = 0; i < shape.Layers; i++)
        {
            string prefix = $"model.layers.{i}.";
            Expect(checkpoint, prefix + "input_layernorm.weight", [shape.Hidden]);
            Expect(checkpoint, prefix + "self_attn.q_proj.weight", [q, shape.Hidden]);
            Expect(checkpoint, prefix + "self_attn.k_proj.weight", [kv, shape.Hidden]);
            Expect(checkpoint, prefix + "self_attn.v_proj.weight", [kv, shape.Hidden]);
            Expect(checkpoint, prefix + "self_attn.o_proj.weight", [shape.Hidden, q]);
            Expect(checkpoint, prefix + "post_attention_layernorm.weight", [shape.Hidden]);
            Expect(checkpoint, prefix + "mlp.gate_proj.weight", [shape.Intermediate, shape.Hidden]);
            Expect(checkpoint, prefix + "mlp.up_proj.weight", [shape.Intermediate, shape.Hidden]);
            Expect(checkpoint, prefix + "mlp.down_proj.weight", [shape.Hidden, shape.Intermediate]);
        }

        Expect(checkpoint, "model.norm.weight", [shape.Hidden]);
        if (!config.TieWordEmbeddings)
        {
            Expect(checkpoint, "lm_head.weight", [shape.Vocab, shape.Hidden]);
        }
    }

    /// <summary>The message and key used when a tensor's shape differs from what the config implies.</summary>
    public static CheckpointFormatException ShapeMismatch(CheckpointFolder checkpoint, string name, IReadOnlyList<long> actual, IReadOnlyList<long> expected)
        => new($"tensor '{name}' has shape [{string.Join(", ", actual)}], but the config implies [{string.Join(", ", expected)}]",
            checkpoint.FilePathOf(name), name);

    private static void Expect(CheckpointFolder checkpoint, string name, long[] expected)
    {
        SafetensorsTensorInfo info = checkpoint.GetInfo(name);
        if (!info.Shape.SequenceEqual(expected))
        {
            throw ShapeMismatch(checkpoint, name, info.Shape, expected);
        }
    }
}
