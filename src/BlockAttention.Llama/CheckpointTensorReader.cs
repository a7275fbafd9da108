using System.IO.Hashing;
using System.Text;
using BlockAttention.Llama.Checkpoints;
using static TorchSharp.torch;

namespace BlockAttention.Llama;

/// <summary>
/// Reads checkpoint tensors straight into the memory of CPU tensors of their stored dtype (no
/// managed copy of the file), converts them to the model's dtype and device, and feeds their
/// bytes to the model's fingerprint.
/// </summary>
internal sealed class CheckpointTensorReader(CheckpointFolder checkpoint, ScalarType dtype, Device device, XxHash128 fingerprint) : ILlamaWeightSource
{
    public Tensor Read(string name, long[] shape)
    {
        var info = checkpoint.GetInfo(name);
        if (!info.Shape.SequenceEqual(shape))
        {
            throw new CheckpointFormatException(
                $"tensor '{name}' has shape [{string.Join(", ", info.Shape)}], but the config implies [{string.Join(", ", shape)}]",
                checkpoint.FilePathOf(name), name);
        }

        var stored = info.DType switch
        {
            SafetensorsDType.F32 => ScalarType.Float32,
            SafetensorsDType.BF16 => ScalarType.BFloat16,
            SafetensorsDType.F16 => ScalarType.Float16,
            _ => throw new CheckpointFormatException($"tensor '{name}' has unsupported dtype {info.DType}", checkpoint.FilePathOf(name), name),
        };

        var cpu = empty(shape, stored);
        var bytes = cpu.bytes;
        checkpoint.ReadInto(name, bytes);
        fingerprint.Append(Encoding.UTF8.GetBytes(name));
        fingerprint.Append(bytes);
        var converted = cpu.to(dtype, device);
        if (!ReferenceEquals(converted, cpu))
        {
            cpu.Dispose(); // `to` returns the same tensor when nothing changes
        }

        return converted;
    }
}
