using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Checkpoints;

/// <summary>Loading a model from a damaged checkpoint fails with an exception that names the file and the tensor or key at fault.</summary>
public class LlamaModelLoadTests
{
    private const string Model = "tiny-llama2";

    [Fact]
    public void A_tensor_missing_from_the_weights_is_named()
    {
        using var folder = CopyWith(tensors => tensors.Where(t => t.Name != "model.layers.1.mlp.down_proj.weight"));

        var act = () => LlamaModel.Load(folder.Path);

        act.Should().Throw<MissingTensorException>().Which.Message.Should().Contain("model.layers.1.mlp.down_proj.weight");
    }

    [Fact]
    public void A_tensor_of_the_wrong_shape_is_named_with_both_shapes()
    {
        using var folder = CopyWith(tensors => tensors.Select(t => t.Name == "model.layers.0.self_attn.k_proj.weight"
            ? t with { Shape = [t.Shape[1], t.Shape[0]] }
            : t));

        var act = () => LlamaModel.Load(folder.Path);

        var error = act.Should().Throw<CheckpointFormatException>().Which;
        error.Key.Should().Be("model.layers.0.self_attn.k_proj.weight");
        error.FilePath.Should().EndWith("model.safetensors");
        error.Message.Should().Contain("[48, 24]").And.Contain("[24, 48]");
    }

    [Fact]
    public void Projection_biases_are_refused_rather_than_ignored()
    {
        using var folder = CopyWith(tensors => tensors, config => config.Replace("\"attention_bias\": false", "\"attention_bias\": true"));

        var act = () => LlamaModel.Load(folder.Path);

        var error = act.Should().Throw<CheckpointFormatException>().Which;
        error.Key.Should().Be("attention_bias");
        error.FilePath.Should().EndWith("config.json");
    }

    [Theory]
    [InlineData("tpu")]
    [InlineData("cuda:banana")]
    public void An_unknown_device_is_refused(string device)
    {
        var act = () => LlamaModel.Load(FixturePaths.Model(Model), new LlamaLoadOptions { Device = device });

        act.Should().Throw<ArgumentException>().WithMessage($"*{device}*");
    }

    [Fact]
    public void A_missing_folder_is_named()
    {
        string missing = Path.Combine(Path.GetTempPath(), "no-such-checkpoint-" + Guid.NewGuid().ToString("N"));

        var act = () => LlamaModel.Load(missing);

        act.Should().Throw<DirectoryNotFoundException>().WithMessage($"*{missing}*");
    }

    /// <summary>A copy of the fixture model with its tensors (and optionally its config) rewritten.</summary>
    private static TempDirectory CopyWith(Func<IEnumerable<SafetensorsWriter.Tensor>, IEnumerable<SafetensorsWriter.Tensor>> edit, Func<string, string>? editConfig = null)
    {
        var folder = new TempDirectory();
        string source = FixturePaths.Model(Model);
        string config = File.ReadAllText(Path.Combine(source, "config.json"));
        File.WriteAllText(folder.File("config.json"), editConfig?.Invoke(config) ?? config);
        using var weights = SafetensorsFile.Open(Path.Combine(source, "model.safetensors"));
        var tensors = weights.TensorNames.Select(name =>
        {
            var info = weights.GetInfo(name);
            var data = new byte[info.ByteLength];
            weights.ReadInto(name, data);
            return new SafetensorsWriter.Tensor(name, "F32", [.. info.Shape], data);
        }).ToList();
        SafetensorsWriter.Write(folder.File("model.safetensors"), edit(tensors));
        return folder;
    }
}
