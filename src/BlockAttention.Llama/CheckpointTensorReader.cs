using System.IO.Hashing;
using System.Runtime.InteropServices;
using System.Text;
using BlockAttention.Llama.Checkpoints;
using static TorchSharp.torch;

namespace BlockAttention.Llama;

/// <summary>
/// Reads checkpoint tensors straight into the memory of CPU tensors of their stored dtype (no
/// managed copy of the file), converts them to the model's dtype and device, and feeds their
/// bytes to the model's fingerprint.
/// </summary>
/// <remarks>
/// A span addresses at most 2 GiB, and real checkpoints hold larger tensors (a 70B float32 or a
/// 405B bfloat16 embedding), so a tensor is read in chunks of whole elements, each through a span
/// over one slice of the tensor.
/// </remarks>
internal sealed class CheckpointTensorReader(CheckpointFolder checkpoint, ScalarType dtype, Device device, XxHash128 fingerprint) : ILlamaWeightSource
{
    /// <summary>The default chunk: 1 GiB, well inside what a span can address.</summary>
    public const long DefaultChunkBytes = 1L << 30;

    /// <summary>The largest number of bytes read through one span (tests lower it to exercise chunking).</summary>
    internal long ChunkBytes { get; init; } = DefaultChunkBytes;

    public Tensor Read(string name, long[] shape)
    {
        var info = checkpoint.GetInfo(name);
        if (!info.Shape.SequenceEqual(shape))
        {
            throw CheckpointShapeCheck.ShapeMismatch(checkpoint, name, info.Shape, shape);
        }

        var stored = info.DType switch
        {
            SafetensorsDType.F32 => ScalarType.Float32,
            SafetensorsDType.BF16 => ScalarType.BFloat16,
            SafetensorsDType.F16 => ScalarType.Float16,
            _ => throw new CheckpointFormatException($"tensor '{name}' has unsupported dtype {info.DType}", checkpoint.FilePathOf(name), name),
        };

        Tensor cpu;
        try
        {
            cpu = empty(shape, stored);
        }
        catch (Exception e) when (e is OutOfMemoryException or ExternalException)
        {
            throw new InsufficientMemoryException($"Not enough memory for tensor '{name}' ({info.ByteLength} bytes) of '{checkpoint.FilePathOf(name)}'.", e);
        }

        try
        {
            fingerprint.Append(Encoding.UTF8.GetBytes(name));
            ReadInChunks(name, cpu, info);
            var converted = cpu.to(dtype, device);
            if (!ReferenceEquals(converted, cpu))
            {
                cpu.Dispose(); // `to` returns the same tensor when nothing changes
            }

            return converted;
        }
        catch
        {
            cpu.Dispose();
            throw;
        }
    }

    private void ReadInChunks(string name, Tensor cpu, SafetensorsTensorInfo info)
    {
        int elementSize = info.DType.SizeInBytes();
        long chunkElements = Math.Max(1, Math.Min(ChunkBytes, int.MaxValue) / elementSize);
        using var flat = cpu.view(-1);
        for (long start = 0; start < info.ElementCount; start += chunkElements)
        {
            long count = Math.Min(chunkElements, info.ElementCount - start);
            using var part = flat.narrow(0, start, count);
            Span<byte> bytes = part.bytes;
            try
            {
                checkpoint.ReadInto(name, start * elementSize, bytes);
            }
            catch (IOException e) when (e is not CheckpointFormatException)
            {
                throw new IOException($"Reading tensor '{name}' from '{checkpoint.FilePathOf(name)}' failed at byte {start * elementSize}: {e.Message}", e);
            }

            fingerprint.Append(bytes);
        }
    }
}
