using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Checkpoints;
using BlockAttention.Tests.Fixtures;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Inputs;

/// <summary>Tensors are read in chunks, so one over 2 GiB (more than a span addresses) loads, and errors name the tensor.</summary>
public class LargeTensorReadTests
{
    [Theory]
    [InlineData(4)] // one float per chunk
    [InlineData(12)] // chunks that do not divide a row
    [InlineData(1 << 20)] // the whole tensor in one chunk
    public void Chunked_reads_give_the_file_bytes_and_the_same_fingerprint(long chunkBytes)
    {
        using var checkpoint = CheckpointFolder.Open(FixturePaths.Model("tiny-llama2"));
        const string name = "model.layers.0.mlp.down_proj.weight";
        var info = checkpoint.GetInfo(name);
        byte[] expected = new byte[info.ByteLength];
        checkpoint.ReadInto(name, expected);
        var oracle = new XxHash128();
        oracle.Append(Encoding.UTF8.GetBytes(name));
        oracle.Append(expected);

        var fingerprint = new XxHash128();
        var reader = new CheckpointTensorReader(checkpoint, ScalarType.Float32, CPU, fingerprint) { ChunkBytes = chunkBytes };
        using var tensor = reader.Read(name, [.. info.Shape]);

        tensor.bytes.ToArray().Should().Equal(expected);
        fingerprint.GetCurrentHash().Should().Equal(oracle.GetCurrentHash());
    }

    [Fact]
    public void A_tensor_over_2_GiB_is_read_at_an_offset_past_2_GiB_from_a_sparse_file()
    {
        using var folder = new TempDirectory();
        string path = folder.File("model.safetensors");
        const long elements = (1L << 30) + 8; // F16: 2 GiB + 16 bytes
        const long bytes = elements * 2;
        string header = $$$"""{"big":{"dtype":"F16","shape":[{{{elements}}}],"data_offsets":[0,{{{bytes}}}]},"small":{"dtype":"F32","shape":[1],"data_offsets":[{{{bytes}}},{{{bytes + 4}}}]}}""";
        byte[] json = Encoding.UTF8.GetBytes(header.PadRight((header.Length + 7) / 8 * 8));
        long dataStart = 8 + json.Length;
        byte[] marker = [.. Enumerable.Range(1, 16).Select(i => (byte)i)];
        using (var file = new FileStream(path, FileMode.CreateNew))
        {
            Span<byte> prefix = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)json.Length);
            file.Write(prefix);
            file.Write(json);
            file.SetLength(dataStart + bytes + 4); // sparse: nothing written in between
            file.Position = dataStart + bytes - 16;
            file.Write(marker);
        }

        using var weights = SafetensorsFile.Open(path);
        weights.GetInfo("big").ByteLength.Should().Be(bytes);
        byte[] tail = new byte[16];
        weights.ReadInto("big", bytes - 16, tail);
        tail.Should().Equal(marker);

        byte[] head = new byte[16];
        weights.ReadInto("big", 0, head);
        head.Should().OnlyContain(b => b == 0);

        var pastEnd = () => weights.ReadInto("big", bytes - 8, new byte[16]);
        pastEnd.Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void A_tensor_whose_file_shrank_after_opening_is_named()
    {
        using var folder = SpecialFiles.CopyOfModel(FixturePaths.Model("tiny-llama2"));
        using var checkpoint = CheckpointFolder.Open(folder.Path);
        const string name = "lm_head.weight";
        var info = checkpoint.GetInfo(name);
        using (var file = new FileStream(folder.File("model.safetensors"), FileMode.Open))
        {
            file.SetLength(info.ByteOffset + 10);
        }

        var reader = new CheckpointTensorReader(checkpoint, ScalarType.Float32, CPU, new XxHash128()) { ChunkBytes = 8 };
        var act = () => reader.Read(name, [.. info.Shape]).Dispose();

        act.Should().Throw<CheckpointFormatException>().Where(e => e.Key == name && e.Message.Contains(name));
    }
}
