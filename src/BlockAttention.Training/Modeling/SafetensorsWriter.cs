using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace BlockAttention.Training.Modeling;

/// <summary>Writes tensors to a <c>.safetensors</c> file (float32, bfloat16 or float16), in the order given.</summary>
public static class SafetensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/> (via a temporary file, so a crash never leaves half a file under the name).</summary>
    public static void Write(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        string code = dtype switch
        {
            ScalarType.Float32 => "F32",
            ScalarType.BFloat16 => "BF16",
            ScalarType.Float16 => "F16",
            _ => throw new ArgumentException($"dtype {dtype} is not supported; use Float32, BFloat16 or Float16", nameof(dtype)),
        };
        long elementSize = dtype == ScalarType.Float32 ? 4 : 2;
        var list = tensors.ToList();
        var header = new Dictionary<string, object> { ["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" } };
        long offset = 0;
        foreach (var (name, tensor) in list)
        {
            long size = checked(tensor.numel() * elementSize);
            header[name] = new { dtype = code, shape = tensor.shape, data_offsets = new[] { offset, offset + size } };
            offset += size;
        }

        byte[] json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        int padded = (json.Length + 7) / 8 * 8;
        string temporary = path + ".tmp";
        using (var file = File.Create(temporary))
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
            file.Write(prefix);
            file.Write(json);
            for (int i = json.Length; i < padded; i++)
            {
                file.WriteByte((byte)' ');
            }

            foreach (var (_, tensor) in list)
            {
                using var scope = NewDisposeScope();
                var cpu = tensor.detach().to(dtype, CPU).contiguous();
                file.Write(cpu.bytes);
            }
        }

        File.Move(temporary, path, overwrite: true);
    }
}
