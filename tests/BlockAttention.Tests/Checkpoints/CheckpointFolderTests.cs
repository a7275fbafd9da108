using System.Text.Json;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Fixtures;
using static BlockAttention.Tests.Checkpoints.SafetensorsWriter;

namespace BlockAttention.Tests.Checkpoints;

public sealed class CheckpointFolderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void OpensTheTinyLlama3Fixture()
    {
        string directory = FixturePaths.Model("tiny-llama3");

        using var checkpoint = CheckpointFolder.Open(directory);

        checkpoint.DirectoryPath.Should().Be(Path.GetFullPath(directory));
        checkpoint.Config.NumHiddenLayers.Should().Be(2);
        checkpoint.Config.Rope.Type.Should().Be(RopeType.Llama3);
        checkpoint.WeightFiles.Should().Equal(Path.Combine(directory, "model.safetensors"));
        checkpoint.TokenizerPath.Should().Be(Path.Combine(directory, "tokenizer.json"));
        checkpoint.TokenizerConfigPath.Should().Be(Path.Combine(directory, "tokenizer_config.json"));
        checkpoint.GenerationConfigPath.Should().BeNull();
        checkpoint.LoadGenerationConfig().Should().BeNull();
        checkpoint.TensorNames.Should().HaveCount(20).And.Contain("model.embed_tokens.weight");
        checkpoint.Contains("lm_head.weight").Should().BeFalse();

        SafetensorsTensorInfo norm = checkpoint.GetInfo("model.norm.weight");
        norm.Shape.Should().Equal((long)checkpoint.Config.HiddenSize);
        byte[] bytes = new byte[norm.ByteLength];
        checkpoint.ReadInto("model.norm.weight", bytes);
        bytes.AsSpan(0, 8).ToArray().Should().Equal(Bits16(0x3F5B, 0x3F81, 0x3F99, 0x3F8F));
    }

    [Fact]
    public void EveryTensorOfTheTinyLlama2FixtureMatchesItsConfig()
    {
        using var checkpoint = CheckpointFolder.Open(FixturePaths.Model("tiny-llama2"));
        LlamaConfig c = checkpoint.Config;

        checkpoint.TokenizerPath.Should().BeNull();
        foreach ((string name, long[] shape) in ExpectedShapes(c))
        {
            checkpoint.GetInfo(name).Shape.Should().Equal(shape, name);
        }

        checkpoint.TensorNames.Should().BeEquivalentTo(ExpectedShapes(c).Select(e => e.Name));
    }

    [Fact]
    public void MissingTensorNamesTheTensorAndTheFolder()
    {
        string directory = Path.GetFullPath(FixturePaths.Model("tiny-llama3"));
        using var checkpoint = CheckpointFolder.Open(directory);

        MissingTensorException e = checkpoint.Invoking(c => c.ReadInto("lm_head.weight", new byte[2])).Should().Throw<MissingTensorException>().Which;
        e.TensorName.Should().Be("lm_head.weight");
        e.FilePath.Should().Be(directory);
        e.Message.Should().Contain("'lm_head.weight'").And.Contain(directory);
        checkpoint.Invoking(c => c.GetInfo("model.layers.9.mlp.up_proj.weight")).Should().Throw<MissingTensorException>()
            .WithMessage("*'model.layers.9.mlp.up_proj.weight'*");
    }

    [Fact]
    public void OpensAShardedFolderBuiltFromTheFixture()
    {
        string source = Path.Combine(FixturePaths.Model("tiny-llama2"), "model.safetensors");
        WriteShardedCopy(source, _temp.Path, shardCount: 3);

        using var original = SafetensorsFile.Open(source);
        using var checkpoint = CheckpointFolder.Open(_temp.Path);

        checkpoint.WeightFiles.Should().HaveCount(3).And.OnlyContain(p => Path.GetFileName(p).StartsWith("model-0000"));
        checkpoint.TensorNames.Should().BeEquivalentTo(original.TensorNames);
        foreach (string name in original.TensorNames)
        {
            SafetensorsTensorInfo info = checkpoint.GetInfo(name);
            info.Shape.Should().Equal(original.GetInfo(name).Shape);
            info.DType.Should().Be(original.GetInfo(name).DType);
            byte[] expected = new byte[info.ByteLength];
            original.ReadInto(name, expected);
            byte[] actual = new byte[info.ByteLength];
            checkpoint.ReadInto(name, actual);
            actual.Should().Equal(expected, name);
        }

        byte[] slice = new byte[8];
        checkpoint.ReadInto("lm_head.weight", 4, slice);
        slice.Should().Equal(F32(
            BitConverter.UInt32BitsToSingle(0xBF4490BB), BitConverter.UInt32BitsToSingle(0xBDC829FF)));
    }

    [Fact]
    public void ASingleWeightsFileWinsOverAnIndex()
    {
        CopyConfig("tiny-llama2");
        Write(_temp.File("model.safetensors"), [new Tensor("only", "F32", [1], F32(1f))]);
        File.WriteAllText(_temp.File("model.safetensors.index.json"), """{"weight_map": {"other": "model-00001-of-00001.safetensors"}}""");

        using var checkpoint = CheckpointFolder.Open(_temp.Path);

        checkpoint.TensorNames.Should().Equal("only");
    }

    [Fact]
    public void ExposesOptionalFilesAndTheGenerationConfig()
    {
        CopyConfig("tiny-llama2");
        Write(_temp.File("model.safetensors"), [new Tensor("w", "F32", [1], F32(1f))]);
        File.WriteAllText(_temp.File("generation_config.json"), """{"bos_token_id": 1, "eos_token_id": [2, 7]}""");
        File.WriteAllText(_temp.File("tokenizer.json"), "{}");

        using var checkpoint = CheckpointFolder.Open(_temp.Path);

        checkpoint.TokenizerPath.Should().Be(_temp.File("tokenizer.json"));
        checkpoint.TokenizerConfigPath.Should().BeNull();
        checkpoint.GenerationConfigPath.Should().Be(_temp.File("generation_config.json"));
        checkpoint.LoadGenerationConfig()!.EosTokenIds.Should().Equal(2, 7);
    }

    [Fact]
    public void ReadingAfterDisposeThrows()
    {
        var checkpoint = CheckpointFolder.Open(FixturePaths.Model("tiny-llama2"));
        checkpoint.Dispose();

        checkpoint.Invoking(c => c.ReadInto("model.norm.weight", new byte[48 * 4])).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void MissingFolder()
    {
        string directory = _temp.File("nowhere");

        FluentActions.Invoking(() => CheckpointFolder.Open(directory)).Should().Throw<DirectoryNotFoundException>()
            .WithMessage($"*'{directory}'*");
    }

    [Fact]
    public void MissingConfig()
    {
        Write(_temp.File("model.safetensors"), [new Tensor("w", "F32", [1], F32(1f))]);

        FileNotFoundException e = FluentActions.Invoking(() => CheckpointFolder.Open(_temp.Path)).Should().Throw<FileNotFoundException>().Which;
        e.FileName.Should().Be(_temp.File("config.json"));
        e.Message.Should().Contain(_temp.Path).And.Contain("config.json");
    }

    [Fact]
    public void MissingWeights()
    {
        CopyConfig("tiny-llama2");
        File.WriteAllText(_temp.File("pytorch_model.bin"), "");

        FileNotFoundException e = FluentActions.Invoking(() => CheckpointFolder.Open(_temp.Path)).Should().Throw<FileNotFoundException>().Which;
        e.FileName.Should().Be(_temp.File("model.safetensors"));
        e.Message.Should().Contain(_temp.Path).And.Contain("model.safetensors.index.json");
    }

    [Fact]
    public void InvalidConfigInTheFolderNamesTheConfigFile()
    {
        File.WriteAllText(_temp.File("config.json"), """{"model_type": "mistral"}""");
        Write(_temp.File("model.safetensors"), [new Tensor("w", "F32", [1], F32(1f))]);

        CheckpointFormatException e = FluentActions.Invoking(() => CheckpointFolder.Open(_temp.Path)).Should().Throw<CheckpointFormatException>().Which;
        e.FilePath.Should().Be(_temp.File("config.json"));
        e.Key.Should().Be("model_type");
        e.Message.Should().Contain("'mistral'");
    }

    [Fact]
    public void IndexNamingAMissingShard()
    {
        string source = Path.Combine(FixturePaths.Model("tiny-llama2"), "model.safetensors");
        WriteShardedCopy(source, _temp.Path, shardCount: 2);
        File.Delete(_temp.File("model-00002-of-00002.safetensors"));

        CheckpointFormatException e = OpenFails(_temp.File("model.safetensors.index.json"));
        e.Key.Should().NotBeNull();
        e.Message.Should().Contain("'model-00002-of-00002.safetensors'").And.Contain($"'{e.Key}'").And.Contain("does not exist");
    }

    [Fact]
    public void ShardLackingAListedTensor()
    {
        CopyConfig("tiny-llama2");
        Write(_temp.File("model-00001-of-00001.safetensors"), [new Tensor("a", "F32", [1], F32(1f))]);
        WriteIndex(new() { ["a"] = "model-00001-of-00001.safetensors", ["b"] = "model-00001-of-00001.safetensors" });

        CheckpointFormatException e = OpenFails(_temp.File("model.safetensors.index.json"));
        e.Key.Should().Be("b");
        e.Message.Should().Contain("'b'").And.Contain(_temp.File("model-00001-of-00001.safetensors"));
    }

    [Fact]
    public void ShardNameThatLeavesTheFolder()
    {
        CopyConfig("tiny-llama2");
        WriteIndex(new() { ["a"] = "../elsewhere.safetensors" });

        CheckpointFormatException e = OpenFails(_temp.File("model.safetensors.index.json"));
        e.Key.Should().Be("a");
        e.Message.Should().Contain("'../elsewhere.safetensors'").And.Contain("outside");
    }

    [Theory]
    [InlineData("{\"weight_map\": ", null)]
    [InlineData("{\"metadata\": {}}", "weight_map")]
    [InlineData("{\"weight_map\": {}}", "weight_map")]
    [InlineData("{\"weight_map\": {\"a\": 3}}", "a")]
    public void MalformedIndex(string json, string? key)
    {
        CopyConfig("tiny-llama2");
        File.WriteAllText(_temp.File("model.safetensors.index.json"), json);

        OpenFails(_temp.File("model.safetensors.index.json")).Key.Should().Be(key);
    }

    [Fact]
    public void MalformedShardNamesTheShard()
    {
        CopyConfig("tiny-llama2");
        WriteRaw(_temp.File("model-00001-of-00001.safetensors"), """{"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}""", new byte[8]);
        WriteIndex(new() { ["a"] = "model-00001-of-00001.safetensors" });

        CheckpointFormatException e = FluentActions.Invoking(() => CheckpointFolder.Open(_temp.Path)).Should().Throw<CheckpointFormatException>().Which;
        e.FilePath.Should().Be(_temp.File("model-00001-of-00001.safetensors"));
        e.Message.Should().Contain("'I64'");
    }

    private CheckpointFormatException OpenFails(string indexPath)
    {
        CheckpointFormatException e = FluentActions.Invoking(() => CheckpointFolder.Open(_temp.Path)).Should().Throw<CheckpointFormatException>().Which;
        e.FilePath.Should().Be(indexPath);
        e.Message.Should().Contain(indexPath);
        return e;
    }

    private void CopyConfig(string model)
        => File.Copy(Path.Combine(FixturePaths.Model(model), "config.json"), _temp.File("config.json"));

    private void WriteIndex(Dictionary<string, string> weightMap)
        => File.WriteAllText(
            _temp.File("model.safetensors.index.json"),
            JsonSerializer.Serialize(new { metadata = new { total_size = 0 }, weight_map = weightMap }));

    /// <summary>Splits <paramref name="source"/> round-robin into shards named as transformers names them, with config and index.</summary>
    private static void WriteShardedCopy(string source, string directory, int shardCount)
    {
        using var file = SafetensorsFile.Open(source);
        var shards = Enumerable.Range(0, shardCount).Select(_ => new List<Tensor>()).ToArray();
        var weightMap = new Dictionary<string, string>();
        int i = 0;
        foreach (string name in file.TensorNames)
        {
            SafetensorsTensorInfo info = file.GetInfo(name);
            byte[] data = new byte[info.ByteLength];
            file.ReadInto(name, data);
            int shard = i++ % shardCount;
            shards[shard].Add(new Tensor(name, info.DType.ToString(), [.. info.Shape], data));
            weightMap[name] = ShardName(shard, shardCount);
        }

        for (int s = 0; s < shardCount; s++)
        {
            Write(Path.Combine(directory, ShardName(s, shardCount)), shards[s], new Dictionary<string, string> { ["format"] = "pt" });
        }

        File.Copy(Path.Combine(Path.GetDirectoryName(source)!, "config.json"), Path.Combine(directory, "config.json"));
        File.WriteAllText(
            Path.Combine(directory, "model.safetensors.index.json"),
            JsonSerializer.Serialize(new { metadata = new { total_size = new FileInfo(source).Length }, weight_map = weightMap }));
    }

    private static string ShardName(int shard, int count) => $"model-{shard + 1:D5}-of-{count:D5}.safetensors";

    private static IEnumerable<(string Name, long[] Shape)> ExpectedShapes(LlamaConfig c)
    {
        long hidden = c.HiddenSize;
        long q = (long)c.NumAttentionHeads * c.HeadDim;
        long kv = (long)c.NumKeyValueHeads * c.HeadDim;
        yield return ("model.embed_tokens.weight", [c.VocabSize, hidden]);
        yield return ("lm_head.weight", [c.VocabSize, hidden]);
        yield return ("model.norm.weight", [hidden]);
        for (int layer = 0; layer < c.NumHiddenLayers; layer++)
        {
            string prefix = $"model.layers.{layer}.";
            yield return (prefix + "input_layernorm.weight", [hidden]);
            yield return (prefix + "post_attention_layernorm.weight", [hidden]);
            yield return (prefix + "self_attn.q_proj.weight", [q, hidden]);
            yield return (prefix + "self_attn.k_proj.weight", [kv, hidden]);
            yield return (prefix + "self_attn.v_proj.weight", [kv, hidden]);
            yield return (prefix + "self_attn.o_proj.weight", [hidden, q]);
            yield return (prefix + "mlp.gate_proj.weight", [c.IntermediateSize, hidden]);
            yield return (prefix + "mlp.up_proj.weight", [c.IntermediateSize, hidden]);
            yield return (prefix + "mlp.down_proj.weight", [hidden, c.IntermediateSize]);
        }
    }
}
