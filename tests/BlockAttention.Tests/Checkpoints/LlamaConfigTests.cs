using System.Text.Json.Nodes;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Checkpoints;

public sealed class LlamaConfigTests
{
    private const string SourcePath = "/models/test/config.json";

    private static string Llama3ConfigPath => Path.Combine(FixturePaths.Model("tiny-llama3"), "config.json");

    private static string Llama2ConfigPath => Path.Combine(FixturePaths.Model("tiny-llama2"), "config.json");

    [Fact]
    public void ParsesTheClassicLayoutOfTinyLlama3()
    {
        // Expected values are those written in tests/fixtures/tiny-llama3/config.json.
        LlamaConfig config = LlamaConfig.Load(Llama3ConfigPath);

        config.VocabSize.Should().Be(128256);
        config.HiddenSize.Should().Be(32);
        config.IntermediateSize.Should().Be(96);
        config.NumHiddenLayers.Should().Be(2);
        config.NumAttentionHeads.Should().Be(4);
        config.NumKeyValueHeads.Should().Be(2);
        config.HeadDim.Should().Be(8);
        config.RmsNormEps.Should().Be(1e-05);
        config.MaxPositionEmbeddings.Should().Be(131072);
        config.TieWordEmbeddings.Should().BeTrue();
        config.AttentionBias.Should().BeFalse();
        config.MlpBias.Should().BeFalse();
        config.BosTokenId.Should().Be(128000);
        config.EosTokenIds.Should().Equal(128001, 128008, 128009);
        config.DType.Should().Be("bfloat16");
        config.Rope.Should().Be(new RopeSettings
        {
            Theta = 500000.0,
            Type = RopeType.Llama3,
            Factor = 8.0,
            LowFreqFactor = 1.0,
            HighFreqFactor = 4.0,
            OriginalMaxPositionEmbeddings = 8192,
        });
    }

    [Fact]
    public void ParsesTheRopeParametersLayoutOfTinyLlama2()
    {
        // Expected values are those written in tests/fixtures/tiny-llama2/config.json.
        LlamaConfig config = LlamaConfig.Load(Llama2ConfigPath);

        config.VocabSize.Should().Be(320);
        config.HiddenSize.Should().Be(48);
        config.IntermediateSize.Should().Be(136);
        config.NumHiddenLayers.Should().Be(3);
        config.NumAttentionHeads.Should().Be(6);
        config.NumKeyValueHeads.Should().Be(3);
        config.HeadDim.Should().Be(8);
        config.RmsNormEps.Should().Be(1e-06);
        config.MaxPositionEmbeddings.Should().Be(4096);
        config.TieWordEmbeddings.Should().BeFalse();
        config.BosTokenId.Should().Be(1);
        config.EosTokenIds.Should().Equal(2);
        config.DType.Should().Be("float32");
        config.Rope.Should().Be(new RopeSettings { Theta = 10000.0, Type = RopeType.Default });
        config.Rope.Factor.Should().BeNull();
        config.Rope.OriginalMaxPositionEmbeddings.Should().BeNull();
    }

    [Fact]
    public void AppliesTheTransformersDefaults()
    {
        JsonObject json = Minimal();
        json.Remove("num_key_value_heads");
        json.Remove("head_dim");
        json.Remove("rope_theta");

        LlamaConfig config = Parse(json);

        config.NumKeyValueHeads.Should().Be(4, "it defaults to num_attention_heads");
        config.HeadDim.Should().Be(64 / 4, "it defaults to hidden_size / num_attention_heads");
        config.TieWordEmbeddings.Should().BeFalse();
        config.BosTokenId.Should().BeNull();
        config.EosTokenIds.Should().BeEmpty();
        config.DType.Should().BeNull();
        config.Rope.Should().Be(new RopeSettings { Theta = 10000.0, Type = RopeType.Default });
    }

    [Fact]
    public void NullMeansAbsent()
    {
        JsonObject json = Minimal();
        json["head_dim"] = null;
        json["rope_scaling"] = null;
        json["bos_token_id"] = null;

        LlamaConfig config = Parse(json);

        config.HeadDim.Should().Be(16);
        config.Rope.Type.Should().Be(RopeType.Default);
        config.BosTokenId.Should().BeNull();
    }

    [Fact]
    public void HeadDimFromTheConfigWinsOverTheQuotient()
    {
        JsonObject json = Minimal();
        json["head_dim"] = 32;

        Parse(json).HeadDim.Should().Be(32);
    }

    [Fact]
    public void AcceptsTheLegacyTypeKeyAndIntegralFloats()
    {
        JsonObject json = Minimal();
        json["max_position_embeddings"] = 4096.0;
        json["rope_scaling"] = new JsonObject
        {
            ["type"] = "llama3",
            ["factor"] = 8,
            ["low_freq_factor"] = 1,
            ["high_freq_factor"] = 4,
            ["original_max_position_embeddings"] = 8192.0,
        };

        LlamaConfig config = Parse(json);

        config.MaxPositionEmbeddings.Should().Be(4096);
        config.Rope.Type.Should().Be(RopeType.Llama3);
        config.Rope.Factor.Should().Be(8);
        config.Rope.OriginalMaxPositionEmbeddings.Should().Be(8192);
    }

    [Fact]
    public void ReadsLlama3ScalingFromRopeParameters()
    {
        JsonObject json = Minimal();
        json.Remove("rope_theta");
        json["rope_parameters"] = new JsonObject
        {
            ["rope_type"] = "llama3",
            ["rope_theta"] = 500000.0,
            ["factor"] = 32.0,
            ["low_freq_factor"] = 1.0,
            ["high_freq_factor"] = 4.0,
            ["original_max_position_embeddings"] = 8192,
        };

        Parse(json).Rope.Should().Be(new RopeSettings
        {
            Theta = 500000.0,
            Type = RopeType.Llama3,
            Factor = 32.0,
            LowFreqFactor = 1.0,
            HighFreqFactor = 4.0,
            OriginalMaxPositionEmbeddings = 8192,
        });
    }

    [Fact]
    public void LoadOfAMissingFileThrowsFileNotFound()
    {
        string path = Path.Combine(Path.GetTempPath(), "ba-no-such-dir", "config.json");

        IOException e = FluentActions.Invoking(() => LlamaConfig.Load(path)).Should().Throw<IOException>().Which;
        e.Should().BeOfType<DirectoryNotFoundException>();
        e.Message.Should().Contain(path);
    }

    [Theory]
    [InlineData("model_type")]
    [InlineData("vocab_size")]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("rms_norm_eps")]
    [InlineData("max_position_embeddings")]
    public void MissingRequiredKeyIsNamed(string key)
    {
        JsonObject json = Minimal();
        json.Remove(key);

        ParseFails(json, key).Message.Should().Contain("required");
    }

    [Theory]
    [InlineData("hidden_size", "\"64\"", "an integer")]
    [InlineData("vocab_size", "1.5", "an integer")]
    [InlineData("rms_norm_eps", "\"1e-5\"", "a number")]
    [InlineData("tie_word_embeddings", "\"yes\"", "true or false")]
    [InlineData("eos_token_id", "\"2\"", "list of integers")]
    [InlineData("eos_token_id", "[2, \"3\"]", "list of integers")]
    [InlineData("model_type", "7", "a string")]
    [InlineData("rope_scaling", "\"llama3\"", "an object")]
    [InlineData("rope_parameters", "[]", "an object")]
    public void WrongJsonTypeIsNamed(string key, string value, string expected)
    {
        JsonObject json = Minimal();
        json[key] = JsonNode.Parse(value);

        ParseFails(json, key).Message.Should().Contain(expected).And.Contain(json[key]!.ToJsonString());
    }

    [Theory]
    [InlineData("mistral")]
    [InlineData("qwen2")]
    [InlineData("Llama")]
    public void UnsupportedModelTypeNamesTheValue(string modelType)
    {
        JsonObject json = Minimal();
        json["model_type"] = modelType;

        ParseFails(json, "model_type").Message.Should().Contain($"'{modelType}'");
    }

    [Theory]
    [InlineData("linear")]
    [InlineData("dynamic")]
    [InlineData("yarn")]
    [InlineData("longrope")]
    public void UnsupportedRopeTypeInRopeScalingNamesKeyAndValue(string ropeType)
    {
        JsonObject json = Minimal();
        json["rope_scaling"] = new JsonObject { ["rope_type"] = ropeType, ["factor"] = 2.0 };

        ParseFails(json, "rope_scaling.rope_type").Message.Should().Contain($"'{ropeType}'");
    }

    [Fact]
    public void UnsupportedRopeTypeUnderTheLegacyKey()
    {
        JsonObject json = Minimal();
        json["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 2.0 };

        ParseFails(json, "rope_scaling.type").Message.Should().Contain("'linear'");
    }

    [Fact]
    public void UnsupportedRopeTypeInRopeParameters()
    {
        JsonObject json = Minimal();
        json.Remove("rope_theta");
        json["rope_parameters"] = new JsonObject { ["rope_type"] = "yarn", ["rope_theta"] = 10000.0, ["factor"] = 4.0 };

        ParseFails(json, "rope_parameters.rope_type").Message.Should().Contain("'yarn'");
    }

    [Fact]
    public void RopeScalingWithoutAType()
    {
        JsonObject json = Minimal();
        json["rope_scaling"] = new JsonObject { ["factor"] = 2.0 };

        ParseFails(json, "rope_scaling.rope_type").Message.Should().Contain("required");
    }

    [Theory]
    [InlineData("factor")]
    [InlineData("low_freq_factor")]
    [InlineData("high_freq_factor")]
    [InlineData("original_max_position_embeddings")]
    public void Llama3ScalingMissingAParameter(string key)
    {
        JsonObject json = Minimal();
        JsonObject scaling = Llama3Scaling();
        scaling.Remove(key);
        json["rope_scaling"] = scaling;

        ParseFails(json, "rope_scaling." + key);
    }

    [Fact]
    public void Llama3ScalingWithHighFactorNotAboveLow()
    {
        JsonObject json = Minimal();
        JsonObject scaling = Llama3Scaling();
        scaling["high_freq_factor"] = 1.0;
        json["rope_scaling"] = scaling;

        ParseFails(json, "rope_scaling.high_freq_factor").Message.Should().Contain("low_freq_factor");
    }

    [Fact]
    public void RopeThetaThatDisagreesBetweenLayouts()
    {
        JsonObject json = Minimal();
        json["rope_theta"] = 10000.0;
        json["rope_parameters"] = new JsonObject { ["rope_type"] = "default", ["rope_theta"] = 500000.0 };

        ParseFails(json, "rope_parameters.rope_theta").Message.Should().Contain("500000").And.Contain("10000");
    }

    [Fact]
    public void RopeTypeThatDisagreesBetweenLayouts()
    {
        JsonObject json = Minimal();
        json["rope_parameters"] = new JsonObject { ["rope_type"] = "default", ["rope_theta"] = 10000.0 };
        json["rope_scaling"] = Llama3Scaling();

        ParseFails(json, "rope_scaling");
    }

    [Fact]
    public void PartialRotaryEmbeddingIsRejected()
    {
        JsonObject json = Minimal();
        json["partial_rotary_factor"] = 0.5;

        ParseFails(json, "partial_rotary_factor").Message.Should().Contain("0.5");
    }

    [Fact]
    public void NonSiluActivationIsRejected()
    {
        JsonObject json = Minimal();
        json["hidden_act"] = "gelu";

        ParseFails(json, "hidden_act").Message.Should().Contain("'gelu'");
    }

    [Theory]
    [InlineData("num_key_value_heads", 3)]
    [InlineData("hidden_size", 66)]
    [InlineData("num_hidden_layers", 0)]
    [InlineData("vocab_size", -5)]
    public void InconsistentOrNonPositiveSizes(string key, int value)
    {
        JsonObject json = Minimal();
        json.Remove("head_dim");
        json[key] = value;

        ParseFails(json, key).Message.Should().Contain(value.ToString());
    }

    [Fact]
    public void InvalidJsonNamesTheFile()
    {
        CheckpointFormatException e = FluentActions.Invoking(() => LlamaConfig.Parse("{\"model_type\": \"llama\",", SourcePath))
            .Should().Throw<CheckpointFormatException>().Which;
        e.FilePath.Should().Be(SourcePath);
        e.Message.Should().Contain(SourcePath).And.Contain("not valid JSON");
    }

    [Fact]
    public void JsonThatIsNotAnObject()
    {
        FluentActions.Invoking(() => LlamaConfig.Parse("[1]", SourcePath))
            .Should().Throw<CheckpointFormatException>().WithMessage($"*{SourcePath}*Array*");
    }

    [Fact]
    public void GenerationConfigReadsOneOrManyEosIds()
    {
        GenerationConfig many = GenerationConfig.Parse("""{"bos_token_id": 128000, "eos_token_id": [128001, 128009], "do_sample": true}""", SourcePath);
        many.BosTokenId.Should().Be(128000);
        many.EosTokenIds.Should().Equal(128001, 128009);
        many.PadTokenId.Should().BeNull();

        GenerationConfig one = GenerationConfig.Parse("""{"eos_token_id": 2, "pad_token_id": 0}""", SourcePath);
        one.BosTokenId.Should().BeNull();
        one.EosTokenIds.Should().Equal(2);
        one.PadTokenId.Should().Be(0);
    }

    [Fact]
    public void GenerationConfigWithAWrongType()
    {
        CheckpointFormatException e = FluentActions.Invoking(() => GenerationConfig.Parse("""{"eos_token_id": "2"}""", SourcePath))
            .Should().Throw<CheckpointFormatException>().Which;
        e.Key.Should().Be("eos_token_id");
        e.Message.Should().Contain(SourcePath).And.Contain("'eos_token_id'");
    }

    private static JsonObject Minimal() => new()
    {
        ["model_type"] = "llama",
        ["vocab_size"] = 100,
        ["hidden_size"] = 64,
        ["intermediate_size"] = 128,
        ["num_hidden_layers"] = 2,
        ["num_attention_heads"] = 4,
        ["num_key_value_heads"] = 2,
        ["head_dim"] = 16,
        ["rms_norm_eps"] = 1e-5,
        ["max_position_embeddings"] = 2048,
        ["rope_theta"] = 10000.0,
    };

    private static JsonObject Llama3Scaling() => new()
    {
        ["rope_type"] = "llama3",
        ["factor"] = 8.0,
        ["low_freq_factor"] = 1.0,
        ["high_freq_factor"] = 4.0,
        ["original_max_position_embeddings"] = 8192,
    };

    private static LlamaConfig Parse(JsonObject json) => LlamaConfig.Parse(json.ToJsonString(), SourcePath);

    private static CheckpointFormatException ParseFails(JsonObject json, string key)
    {
        CheckpointFormatException e = FluentActions.Invoking(() => Parse(json)).Should().Throw<CheckpointFormatException>().Which;
        e.FilePath.Should().Be(SourcePath);
        e.Key.Should().Be(key);
        e.Message.Should().Contain(SourcePath).And.Contain($"'{key}'");
        return e;
    }
}
