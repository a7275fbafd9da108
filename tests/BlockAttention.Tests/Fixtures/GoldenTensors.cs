using System.Runtime.InteropServices;
using BlockAttention.Llama.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Fixtures;

/// <summary>Reads reference tensors from a fixture model's <c>golden.safetensors</c>.</summary>
internal static class GoldenTensors
{
    public static Tensor Read(string model, string name)
    {
        using var file = SafetensorsFile.Open(Path.Combine(FixturePaths.Model(model), "golden.safetensors"));
        var info = file.GetInfo(name);
        info.DType.Should().Be(SafetensorsDType.F32);
        var result = empty([.. info.Shape], ScalarType.Float32);
        file.ReadInto(name, result.bytes);
        return result;
    }

    public static double MaxAbsDiff(Tensor actual, Tensor expected)
    {
        actual.shape.Should().Equal(expected.shape);
        using var a = actual.to(ScalarType.Float32, CPU);
        using var diff = a.sub(expected).abs_().max();
        return diff.item<float>();
    }
}
