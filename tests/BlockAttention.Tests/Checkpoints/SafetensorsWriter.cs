using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace BlockAttention.Tests.Checkpoints;

/// <summary>
/// Writes safetensors files for tests: well-formed ones from tensors, and raw ones from any header
/// text and data so that each malformation can be produced on purpose.
/// </summary>
internal static class SafetensorsWriter
{
    public sealed record Tensor(string Name, string DType, long[] Shape, byte[] Data);

    /// <summary>Writes <paramref name="tensors"/> back to back in the given order, as the Python writer does.</summary>
    public static void Write(string path, IEnumerable<Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = new Dictionary<string, object>();
        if (metadata is not null)
        {
            header["__metadata__"] = metadata;
        }

        using var data = new MemoryStream();
        foreach (Tensor tensor in tensors)
        {
            long begin = data.Length;
            data.Write(tensor.Data);
            header[tensor.Name] = new { dtype = tensor.DType, shape = tensor.Shape, data_offsets = new[] { begin, data.Length } };
        }

        WriteRaw(path, JsonSerializer.Serialize(header), data.ToArray());
    }

    /// <summary>Writes a length prefix, <paramref name="headerJson"/> padded to 8 bytes with spaces, then <paramref name="data"/>.</summary>
    /// <param name="declaredHeaderLength">A length prefix to write instead of the true one.</param>
    public static void WriteRaw(string path, string headerJson, byte[] data, ulong? declaredHeaderLength = null)
    {
        byte[] json = Encoding.UTF8.GetBytes(headerJson);
        int padded = (json.Length + 7) / 8 * 8;
        using FileStream file = File.Create(path);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, declaredHeaderLength ?? (ulong)padded);
        file.Write(prefix);
        file.Write(json);
        file.Write(Enumerable.Repeat((byte)' ', padded - json.Length).ToArray());
        file.Write(data);
    }

    public static byte[] F32(params float[] values)
    {
        byte[] bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        }

        return bytes;
    }

    /// <summary>Little-endian 16-bit patterns, for BF16 and F16 data given as bits.</summary>
    public static byte[] Bits16(params ushort[] values)
    {
        byte[] bytes = new byte[values.Length * 2];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(i * 2), values[i]);
        }

        return bytes;
    }
}
