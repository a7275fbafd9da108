using System.Text.Json.Nodes;
using BlockAttention.IO;
using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Checkpoints;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Inputs;

/// <summary>
/// Checkpoint folders with a pipe, a device or an absurd number where a file or a size belongs: each
/// load ends at once with an exception naming the file (and key), never a hang or out-of-memory.
/// </summary>
public class HostileCheckpointTests
{
    private static readonly string Llama3 = FixturePaths.Model("tiny-llama3");

    public static TheoryData<string, string> SpecialFileCases()
    {
        var data = new TheoryData<string, string>();
        foreach (string file in (string[])["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"])
        {
            foreach (string kind in (string[])["fifo", "/dev/zero", "/dev/urandom"])
            {
                data.Add(file, kind);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(SpecialFileCases))]
    public void A_checkpoint_file_replaced_by_a_pipe_or_device_is_refused_and_named(string file, string kind)
    {
        using var folder = SpecialFiles.CopyOfModel(Llama3);
        SpecialFiles.Replace(folder, file, kind);

        Exception? error = null;
        SpecialFiles.WithinSeconds(30, () => error = Record.Exception(() => LlamaModel.Load(folder.Path).Dispose()));

        error.Should().BeOfType<InputFileException>().Which.FilePath.Should().Be(folder.File(file));
        error!.Message.Should().Contain(kind == "fifo" ? "named pipe" : "character device");
    }

    [Theory]
    [InlineData("fifo")]
    [InlineData("/dev/zero")]
    public void A_shard_index_or_generation_config_replaced_by_a_pipe_or_device_is_refused(string kind)
    {
        using var folder = SpecialFiles.CopyOfModel(Llama3);
        File.Move(folder.File("model.safetensors"), folder.File("model-00001-of-00001.safetensors"));
        SpecialFiles.Replace(folder, "model.safetensors.index.json", kind);

        Exception? indexError = null;
        SpecialFiles.WithinSeconds(30, () => indexError = Record.Exception(() => CheckpointFolder.Open(folder.Path).Dispose()));
        indexError.Should().BeOfType<InputFileException>().Which.FilePath.Should().Be(folder.File("model.safetensors.index.json"));

        using var plain = SpecialFiles.CopyOfModel(Llama3);
        SpecialFiles.Replace(plain, "generation_config.json", kind);
        using var checkpoint = CheckpointFolder.Open(plain.Path);
        Exception? generationError = null;
        SpecialFiles.WithinSeconds(30, () => generationError = Record.Exception(() => checkpoint.LoadGenerationConfig()));
        generationError.Should().BeOfType<InputFileException>().Which.FilePath.Should().Be(plain.File("generation_config.json"));
    }

    [Theory]
    [InlineData("\\u0000")]
    [InlineData("shard\\u0000.safetensors")]
    public void A_shard_name_no_path_can_hold_is_named(string shard)
    {
        // Found by the property tests: a NUL made Path throw an ArgumentException naming neither file.
        using var folder = SpecialFiles.CopyOfModel(Llama3);
        File.Move(folder.File("model.safetensors"), folder.File("model-00001-of-00001.safetensors"));
        File.WriteAllText(folder.File("model.safetensors.index.json"), "{\"weight_map\": {\"model.norm.weight\": \"" + shard + "\"}}");

        var act = () => CheckpointFolder.Open(folder.Path).Dispose();

        act.Should().Throw<CheckpointFormatException>()
            .Where(e => e.Key == "model.norm.weight" && e.FilePath == folder.File("model.safetensors.index.json") && e.Message.Contains("not a valid file name"));
    }

    [Theory]
    [InlineData(nameof(CheckpointFileLimits.ConfigJsonBytes), "config.json")]
    [InlineData(nameof(CheckpointFileLimits.TokenizerJsonBytes), "tokenizer.json")]
    [InlineData(nameof(CheckpointFileLimits.TokenizerConfigJsonBytes), "tokenizer_config.json")]
    public void A_file_over_its_limit_is_refused_naming_the_option_that_raises_it(string limit, string file)
    {
        long size = new FileInfo(Path.Combine(Llama3, file)).Length;
        var limits = limit switch
        {
            nameof(CheckpointFileLimits.ConfigJsonBytes) => new CheckpointFileLimits { ConfigJsonBytes = size - 1 },
            nameof(CheckpointFileLimits.TokenizerJsonBytes) => new CheckpointFileLimits { TokenizerJsonBytes = size - 1 },
            _ => new CheckpointFileLimits { TokenizerConfigJsonBytes = size - 1 },
        };

        var act = () => LlamaModel.Load(Llama3, new LlamaLoadOptions { FileLimits = limits }).Dispose();

        act.Should().Throw<InputFileException>()
            .Where(e => e.FilePath.EndsWith(file) && e.Message.Contains($"FileLimits.{limit}") && e.Message.Contains((size - 1).ToString()));
    }

    [Fact]
    public void A_safetensors_header_over_its_limit_is_refused_naming_the_option()
    {
        var act = () => CheckpointFolder.Open(Llama3, new CheckpointFileLimits { SafetensorsHeaderBytes = 100 }).Dispose();

        act.Should().Throw<CheckpointFormatException>().WithMessage("*model.safetensors*more than the 100 allowed*SafetensorsHeaderBytes*");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(long.MaxValue)]
    public void A_limit_that_is_not_a_usable_size_is_refused(long value)
    {
        var act = () => CheckpointFolder.Open(Llama3, new CheckpointFileLimits { ShardIndexBytes = value });

        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*ShardIndexBytes*");
    }

    [Fact]
    public void A_layer_count_of_int_max_fails_on_the_checkpoint_before_any_allocation()
    {
        using var folder = SpecialFiles.CopyOfModel(Llama3);
        EditConfig(folder, json => json["num_hidden_layers"] = int.MaxValue);
        long before = GC.GetAllocatedBytesForCurrentThread();

        var act = () => LlamaModel.Load(folder.Path).Dispose();

        var error = act.Should().Throw<CheckpointFormatException>().Which;
        error.Key.Should().Be("num_hidden_layers");
        error.Message.Should().Contain("2147483647").And.Contain($"model.layers.{int.MaxValue - 1}.input_layernorm.weight");
        GC.GetAllocatedBytesForCurrentThread().Should().BeLessThan(before + (512L << 20), "the failure must come before the layers are allocated");
    }

    [Theory]
    [InlineData("vocab_size", int.MaxValue, "model.embed_tokens.weight")]
    [InlineData("intermediate_size", int.MaxValue, "model.layers.0.mlp.gate_proj.weight")]
    [InlineData("num_attention_heads", 65536, "model.layers.0.self_attn.q_proj.weight")]
    public void A_huge_size_is_checked_against_the_tensors_present(string key, int value, string tensor)
    {
        using var folder = SpecialFiles.CopyOfModel(Llama3);
        EditConfig(folder, json =>
        {
            json[key] = value;
            if (key == "num_attention_heads")
            {
                json["num_key_value_heads"] = value;
            }
        });

        var act = () => LlamaModel.Load(folder.Path).Dispose();

        act.Should().Throw<CheckpointFormatException>().Which.Key.Should().Be(tensor);
    }

    [Theory]
    [InlineData("cpu:0")]
    [InlineData("banana")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:")]
    [InlineData("")]
    public void An_unknown_device_names_the_value_and_what_is_accepted(string device)
    {
        var act = () => LlamaModel.Load(Llama3, new LlamaLoadOptions { Device = device }).Dispose();

        act.Should().Throw<ArgumentException>()
            .Where(e => e.Message.Contains($"'{device}'") && e.Message.Contains("cpu, cuda or cuda:N") && !e.Message.Contains("BANANA"));
    }

    private static void EditConfig(TempDirectory folder, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(folder.File("config.json")))!.AsObject();
        edit(json);
        File.WriteAllText(folder.File("config.json"), json.ToJsonString());
    }
}
