using System.Text.Json;
using System.Text.Json.Nodes;
using BlockAttention.Llama.Checkpoints;
using static TorchSharp.torch;

namespace BlockAttention.Training.Modeling;

/// <summary>
/// Saves a <see cref="TrainableLlama"/> in the Hugging Face layout: <c>config.json</c> and one
/// <c>model.safetensors</c> (no <c>lm_head.weight</c> when the embeddings are tied), plus the
/// source folder's tokenizer and generation files, so both our loader and transformers load it.
/// A model with LoRA adapters is saved with the adapters merged into their weights.
/// </summary>
public static class CheckpointSaver
{
    private static readonly string[] s_companionFiles = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"];

    /// <summary>Writes the checkpoint into <paramref name="directory"/> (created if needed).</summary>
    public static void Save(TrainableLlama model, string directory, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(model);
        Directory.CreateDirectory(directory);
        using (NewDisposeScope())
        {
            // Under LoRA, the adapters merged into their projections: the checkpoint is an ordinary Llama.
            SafetensorsWriter.Write(Path.Combine(directory, CheckpointFolder.WeightsFileName), model.MergedWeights(), dtype);
        }

        string dtypeName = dtype switch { ScalarType.BFloat16 => "bfloat16", ScalarType.Float16 => "float16", _ => "float32" };
        JsonObject config = model.SourceDirectory is { } source
            ? JsonNode.Parse(File.ReadAllText(Path.Combine(source, CheckpointFolder.ConfigFileName)))!.AsObject()
            : ConfigJson(model.Config);
        config["torch_dtype"] = dtypeName;
        config["dtype"] = dtypeName;
        File.WriteAllText(Path.Combine(directory, CheckpointFolder.ConfigFileName), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        if (model.SourceDirectory is { } from && !SamePath(from, directory))
        {
            foreach (string name in s_companionFiles)
            {
                string file = Path.Combine(from, name);
                if (File.Exists(file))
                {
                    File.Copy(file, Path.Combine(directory, name), overwrite: true);
                }
            }
        }
    }

    /// <summary>The <c>config.json</c> content of <paramref name="config"/>, as transformers writes a Llama config.</summary>
    public static JsonObject ConfigJson(LlamaConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var rope = config.Rope;
        var ropeJson = new JsonObject { ["rope_theta"] = rope.Theta, ["rope_type"] = rope.Type == RopeType.Llama3 ? "llama3" : "default" };
        if (rope.Type == RopeType.Llama3)
        {
            ropeJson["factor"] = rope.Factor;
            ropeJson["low_freq_factor"] = rope.LowFreqFactor;
            ropeJson["high_freq_factor"] = rope.HighFreqFactor;
            ropeJson["original_max_position_embeddings"] = rope.OriginalMaxPositionEmbeddings;
        }

        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["hidden_act"] = "silu",
            ["attention_bias"] = false,
            ["mlp_bias"] = false,
            ["vocab_size"] = config.VocabSize,
            ["hidden_size"] = config.HiddenSize,
            ["intermediate_size"] = config.IntermediateSize,
            ["num_hidden_layers"] = config.NumHiddenLayers,
            ["num_attention_heads"] = config.NumAttentionHeads,
            ["num_key_value_heads"] = config.NumKeyValueHeads,
            ["head_dim"] = config.HeadDim,
            ["rms_norm_eps"] = config.RmsNormEps,
            ["max_position_embeddings"] = config.MaxPositionEmbeddings,
            ["tie_word_embeddings"] = config.TieWordEmbeddings,
            ["rope_theta"] = rope.Theta,
            ["rope_parameters"] = ropeJson,
        };
        if (rope.Type == RopeType.Llama3)
        {
            json["rope_scaling"] = ropeJson.DeepClone();
        }

        if (config.BosTokenId is { } bos)
        {
            json["bos_token_id"] = bos;
        }

        if (config.EosTokenIds.Count > 0)
        {
            json["eos_token_id"] = config.EosTokenIds.Count == 1 ? config.EosTokenIds[0] : new JsonArray([.. config.EosTokenIds.Select(e => (JsonNode)e)]);
        }

        return json;
    }

    private static bool SamePath(string a, string b) =>
        string.Equals(Path.GetFullPath(a).TrimEnd('/'), Path.GetFullPath(b).TrimEnd('/'), StringComparison.Ordinal);
}
