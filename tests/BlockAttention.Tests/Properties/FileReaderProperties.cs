using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using BlockAttention.Cli;
using BlockAttention.Cli.Generate;
using BlockAttention.IO;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Llama.Tokenization;
using BlockAttention.Tests.Checkpoints;
using BlockAttention.Tests.Fixtures;
using BlockAttention.Tests.Tokenization;
using CsCheck;

namespace BlockAttention.Tests.Properties;

/// <summary>
/// Property-based tests: valid fixtures damaged at random (truncated, bits flipped, values of another
/// JSON kind, extreme numbers, odd Unicode) are read into a result or refused with the reader's
/// documented exception, in bounded time and memory. Each reader gets several hundred inputs (about half a minute in all).
/// </summary>
public sealed class FileReaderProperties : IDisposable
{
    private const long Iterations = 1500;
    private readonly TempDirectory _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void Config_json()
    {
        string original = File.ReadAllText(Path.Combine(FixturePaths.Model("tiny-llama3"), "config.json"));
        string path = _folder.File("config.json");

        PropertyRun.Check(Mutations.Any(original), bytes =>
        {
            File.WriteAllBytes(path, bytes);
            LlamaConfig config = LlamaConfig.Load(path);
            CheckConfigIsUsable(config);
        }, e => e is CheckpointFormatException, Iterations, MaxAllocated(original.Length));
    }

    [Fact]
    public void Generation_config_json()
    {
        const string original = """{"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "pad_token_id": null, "do_sample": true, "temperature": 0.6, "top_p": 0.9}""";
        string path = _folder.File("generation_config.json");

        PropertyRun.Check(Mutations.Any(original), bytes =>
        {
            File.WriteAllBytes(path, bytes);
            GenerationConfig config = GenerationConfig.Load(path);
            config.EosTokenIds.Should().NotContain(id => id < 0);
        }, e => e is CheckpointFormatException, Iterations, MaxAllocated(original.Length));
    }

    [Fact]
    public void Safetensors_file_bytes()
    {
        byte[] original = SmallSafetensors();
        string path = _folder.File("model.safetensors");

        PropertyRun.Check(Mutations.Bytes(original), bytes =>
        {
            File.WriteAllBytes(path, bytes);
            ReadEveryTensor(path);
        }, e => e is CheckpointFormatException, Iterations, MaxAllocated(original.Length));
    }

    [Fact]
    public void Safetensors_header_json()
    {
        // The header of a real (tiny) checkpoint, damaged as JSON and written back with a correct length prefix.
        byte[] file = File.ReadAllBytes(Path.Combine(FixturePaths.Model("tiny-llama2"), "model.safetensors"));
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        string header = Encoding.UTF8.GetString(file, 8, headerLength).TrimEnd();
        byte[] data = file[(8 + headerLength)..];
        string path = _folder.File("model.safetensors");

        PropertyRun.Check(Mutations.Json(header).Select(Encoding.UTF8.GetBytes), json =>
        {
            using (var stream = File.Create(path))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)json.Length);
                stream.Write(prefix);
                stream.Write(json);
                stream.Write(data);
            }

            ReadEveryTensor(path);
        }, e => e is CheckpointFormatException, Iterations, MaxAllocated(header.Length));
    }

    [Fact]
    public void Shard_index()
    {
        string source = FixturePaths.Model("tiny-llama2");
        File.Copy(Path.Combine(source, "config.json"), _folder.File("config.json"));
        File.Copy(Path.Combine(source, "model.safetensors"), _folder.File("model-00001-of-00001.safetensors"));
        using var weights = SafetensorsFile.Open(_folder.File("model-00001-of-00001.safetensors"));
        var map = new JsonObject();
        foreach (string name in weights.TensorNames)
        {
            map[name] = "model-00001-of-00001.safetensors";
        }

        string original = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 445256 }, ["weight_map"] = map }.ToJsonString();
        string path = _folder.File("model.safetensors.index.json");

        PropertyRun.Check(Mutations.Any(original), bytes =>
        {
            File.WriteAllBytes(path, bytes);
            using var checkpoint = CheckpointFolder.Open(_folder.Path);
            checkpoint.TensorNames.Should().NotBeEmpty();
        }, e => e is CheckpointFormatException, Iterations / 2, MaxAllocated(original.Length) + (16L << 20));
    }

    [Fact]
    public void Tokenizer_json()
    {
        using var files = new TokenizerJsonBuilder();
        string original = files.Json.ToJsonString();
        files.WriteConfig("""{"bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>"}}""");

        PropertyRun.Check(Mutations.Any(original), bytes =>
        {
            File.WriteAllBytes(files.TokenizerPath, bytes);
            UseTokenizer(LlamaTokenizer.FromFile(files.TokenizerPath));
        }, e => e is TokenizerFormatException, Iterations, MaxAllocated(original.Length) + (32L << 20));
    }

    [Fact]
    public void Tokenizer_config_json()
    {
        using var files = new TokenizerJsonBuilder();
        files.Write();
        const string original = """{"add_bos_token": true, "bos_token": "<|begin_of_text|>", "eos_token": {"content": "<|eot_id|>", "special": true}, "model_max_length": 131072}""";

        PropertyRun.Check(Mutations.Any(original), bytes =>
        {
            File.WriteAllBytes(files.ConfigPath, bytes);
            UseTokenizer(LlamaTokenizer.FromFile(files.TokenizerPath));
        }, e => e is TokenizerFormatException, Iterations / 2, 64L << 20);
    }

    [Theory]
    [InlineData("""{"passages": [{"title": "Paris", "text": "Paris is the capital of France. \u00e9\u0301 \ud83d\ude00"}, {"title": "B", "text": "b"}], "question": "What is the capital?", "instruction": "Answer briefly."}""")]
    [InlineData("""{"blocks": ["first block", "second \u202e block", "final block"]}""")]
    [InlineData("""["only the final block"]""")]
    public void Blocks_file(string original)
    {
        string path = _folder.File("blocks.json");

        PropertyRun.Check(Mutations.Any(original), bytes =>
        {
            File.WriteAllBytes(path, bytes);
            BlocksFile.Read(path).Blocks.Should().NotBeEmpty();
        }, e => e is InputException, Iterations / 2, MaxAllocated(original.Length));
    }

    // Generous for parsing and messages, tiny next to what an unbounded read or a size taken on trust would take.
    private static long MaxAllocated(long inputLength) => (32L << 20) + 200 * inputLength;

    private static void CheckConfigIsUsable(LlamaConfig config)
    {
        // What the loader relies on once a config parses.
        double.IsFinite(config.RmsNormEps).Should().BeTrue();
        double.IsFinite(config.Rope.Theta).Should().BeTrue();
        config.NumAttentionHeads.Should().BeGreaterThan(0);
        (config.NumAttentionHeads % config.NumKeyValueHeads).Should().Be(0);
        (config.HeadDim % 2).Should().Be(0);
        foreach (double? factor in (double?[])[config.Rope.Factor, config.Rope.LowFreqFactor, config.Rope.HighFreqFactor])
        {
            (factor is null || double.IsFinite(factor.Value)).Should().BeTrue();
        }
    }

    private static void ReadEveryTensor(string path)
    {
        using var file = SafetensorsFile.Open(path);
        byte[] buffer = new byte[4096];
        foreach (string name in file.TensorNames)
        {
            var info = file.GetInfo(name);
            int length = (int)Math.Min(info.ByteLength, buffer.Length);
            file.ReadInto(name, 0, buffer.AsSpan(0, length));
            file.ReadInto(name, info.ByteLength - length, buffer.AsSpan(0, length));
        }
    }

    private static void UseTokenizer(LlamaTokenizer tokenizer)
    {
        // Short text: a damaged split regex may backtrack, but not for long on 20 characters.
        IReadOnlyList<int> ids = tokenizer.Encode("Hi the 12<|eot_id|>\u00e9");
        ids.Should().NotContain(id => id < 0 || id >= tokenizer.VocabSize);
        tokenizer.Decode(ids);
    }

    private static byte[] SmallSafetensors()
    {
        string path = Path.GetTempFileName();
        try
        {
            SafetensorsWriter.Write(path,
            [
                new SafetensorsWriter.Tensor("a.weight", "F32", [2, 3], SafetensorsWriter.F32(1, 2, 3, 4, 5, 6)),
                new SafetensorsWriter.Tensor("b.bias", "BF16", [4], SafetensorsWriter.Bits16(0x3F80, 0x4000, 0x4040, 0x4080)),
                new SafetensorsWriter.Tensor("scalar", "F16", [], SafetensorsWriter.Bits16(0x3C00)),
                new SafetensorsWriter.Tensor("empty", "F32", [0, 5], []),
            ], new Dictionary<string, string> { ["format"] = "pt" });
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
