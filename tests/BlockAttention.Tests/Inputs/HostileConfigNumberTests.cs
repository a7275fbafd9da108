using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Inputs;

/// <summary>Numbers in config.json and generation_config.json: finite and in range, or refused naming the key.</summary>
public class HostileConfigNumberTests
{
    private static readonly string Llama3Config = File.ReadAllText(Path.Combine(FixturePaths.Model("tiny-llama3"), "config.json"));

    [Theory]
    [InlineData("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 1e400", "rms_norm_eps")]
    [InlineData("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": -1e400", "rms_norm_eps")]
    [InlineData("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 2.5", "rms_norm_eps")]
    [InlineData("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 0", "rms_norm_eps")]
    [InlineData("\"rope_theta\": 500000.0", "\"rope_theta\": 1e400", "rope_theta")]
    [InlineData("\"rope_theta\": 500000.0", "\"rope_theta\": 20000000000000", "rope_theta")]
    [InlineData("\"factor\": 8.0", "\"factor\": 1e400", "rope_scaling.factor")]
    [InlineData("\"factor\": 8.0", "\"factor\": 10000000", "rope_scaling.factor")]
    [InlineData("\"low_freq_factor\": 1.0", "\"low_freq_factor\": 1e400", "rope_scaling.low_freq_factor")]
    [InlineData("\"high_freq_factor\": 4.0", "\"high_freq_factor\": 1e400", "rope_scaling.high_freq_factor")]
    [InlineData("\"original_max_position_embeddings\": 8192", "\"original_max_position_embeddings\": 1e400", "rope_scaling.original_max_position_embeddings")]
    [InlineData("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1e400", "num_hidden_layers")]
    [InlineData("\"bos_token_id\": 128000", "\"bos_token_id\": -1", "bos_token_id")]
    [InlineData("128009", "-7", "eos_token_id")]
    [InlineData("\"head_dim\": 8", "\"head_dim\": 7", "head_dim")]
    public void An_infinite_or_out_of_range_number_is_refused_naming_the_key(string original, string replacement, string key)
    {
        Llama3Config.Should().Contain(original);
        string json = Llama3Config.Replace(original, replacement);

        var act = () => LlamaConfig.Parse(json, "config.json");

        var error = act.Should().Throw<CheckpointFormatException>().Which;
        error.Key.Should().Be(key);
        error.Message.Should().Contain(replacement.Split(": ")[^1].TrimStart('"'));
    }

    [Fact]
    public void The_rope_parameters_layout_is_checked_the_same_way()
    {
        string json = """
            { "model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "rms_norm_eps": 1e-5, "max_position_embeddings": 2048,
              "rope_parameters": { "rope_type": "default", "rope_theta": 1e400 } }
            """;

        var act = () => LlamaConfig.Parse(json, "config.json");

        act.Should().Throw<CheckpointFormatException>().Which.Key.Should().Be("rope_parameters.rope_theta");
    }

    [Theory]
    [InlineData("""{ "bos_token_id": 1e400 }""", "bos_token_id")]
    [InlineData("""{ "eos_token_id": [1, -2] }""", "eos_token_id")]
    [InlineData("""{ "eos_token_id": { "a": 1 } }""", "eos_token_id")]
    public void Generation_config_ids_are_checked(string json, string key)
    {
        var act = () => GenerationConfig.Parse(json, "generation_config.json");

        act.Should().Throw<CheckpointFormatException>().Which.Key.Should().Be(key);
    }

    [Fact]
    public void A_config_with_a_byte_order_mark_loads_and_one_with_a_lone_surrogate_is_refused()
    {
        string folder = Directory.CreateTempSubdirectory("ba-config-").FullName;
        try
        {
            string path = Path.Combine(folder, "config.json");
            File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. System.Text.Encoding.UTF8.GetBytes(Llama3Config)]);
            LlamaConfig.Load(path).NumHiddenLayers.Should().Be(2);

            File.WriteAllText(path, Llama3Config.Replace("\"torch_dtype\": \"bfloat16\"", "\"torch_dtype\": \"\\udc00\""));
            var act = () => LlamaConfig.Load(path);
            act.Should().Throw<CheckpointFormatException>().Where(e => e.FilePath == path && e.Message.Contains("lone surrogate"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
