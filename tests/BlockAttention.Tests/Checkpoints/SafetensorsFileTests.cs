using System.Buffers.Binary;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Fixtures;
using static BlockAttention.Tests.Checkpoints.SafetensorsWriter;

namespace BlockAttention.Tests.Checkpoints;

public sealed class SafetensorsFileTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void ReadsF32Values()
    {
        float[] values = [1.5f, -2f, 0f, 3.25f, float.MaxValue, 1e-7f];
        string path = _temp.File("f32.safetensors");
        Write(path, [new Tensor("w", "F32", [2, 3], F32(values))]);

        using var file = SafetensorsFile.Open(path);
        SafetensorsTensorInfo info = file.GetInfo("w");
        info.Name.Should().Be("w");
        info.DType.Should().Be(SafetensorsDType.F32);
        info.Shape.Should().Equal(2L, 3L);
        info.ElementCount.Should().Be(6);
        info.ByteLength.Should().Be(24);

        byte[] bytes = new byte[24];
        file.ReadInto("w", bytes);
        Enumerable.Range(0, 6).Select(i => BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4))).Should().Equal(values);
    }

    [Fact]
    public void ReadsBF16BitPatterns()
    {
        // bfloat16 is the top half of a float32: 1.0f = 0x3F800000 -> 0x3F80, -2.0f = 0xC0000000 -> 0xC000,
        // 0.5f = 0x3F000000 -> 0x3F00, and 3.140625f = 0x40490000 -> 0x4049 (pi truncated to bf16).
        string path = _temp.File("bf16.safetensors");
        Write(path, [new Tensor("w", "BF16", [4], Bits16(0x3F80, 0xC000, 0x3F00, 0x4049))]);

        using var file = SafetensorsFile.Open(path);
        file.GetInfo("w").DType.Should().Be(SafetensorsDType.BF16);
        byte[] bytes = new byte[8];
        file.ReadInto("w", bytes);

        bytes.Should().Equal(0x80, 0x3F, 0x00, 0xC0, 0x00, 0x3F, 0x49, 0x40);
        WidenBF16(bytes).Should().Equal(1.0f, -2.0f, 0.5f, 3.140625f);
    }

    [Fact]
    public void ReadsF16BitPatterns()
    {
        // binary16: 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800, 65504 (the largest finite half) = 0x7BFF.
        string path = _temp.File("f16.safetensors");
        Write(path, [new Tensor("w", "F16", [2, 2], Bits16(0x3C00, 0xC000, 0x3800, 0x7BFF))]);

        using var file = SafetensorsFile.Open(path);
        file.GetInfo("w").DType.Should().Be(SafetensorsDType.F16);
        byte[] bytes = new byte[8];
        file.ReadInto("w", bytes);

        Enumerable.Range(0, 4)
            .Select(i => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(i * 2))))
            .Should().Equal(1.0f, -2.0f, 0.5f, 65504f);
    }

    [Fact]
    public void ReportsAbsoluteOffsetsAndReadsEachTensorOfAMixedFile()
    {
        string path = _temp.File("mixed.safetensors");
        Write(path,
        [
            new Tensor("a", "F32", [2], F32(1f, 2f)),
            new Tensor("b", "BF16", [3], Bits16(0x3F80, 0x4000, 0x4040)),
            new Tensor("c", "F16", [1], Bits16(0x3C00)),
        ]);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(path).AsSpan(0, 8));
        long dataStart = 8 + (long)headerLength;

        using var file = SafetensorsFile.Open(path);
        file.Tensors.Should().HaveCount(3);
        file.TensorNames.Should().Equal("a", "b", "c");
        file.GetInfo("a").ByteOffset.Should().Be(dataStart);
        file.GetInfo("b").ByteOffset.Should().Be(dataStart + 8);
        file.GetInfo("c").ByteOffset.Should().Be(dataStart + 14);

        byte[] b = new byte[6];
        file.ReadInto("b", b);
        WidenBF16(b).Should().Equal(1f, 2f, 3f);
        byte[] c = new byte[2];
        file.ReadInto("c", c);
        c.Should().Equal(0x00, 0x3C);
    }

    [Fact]
    public void ReadsPartOfATensorFromAnOffset()
    {
        string path = _temp.File("part.safetensors");
        Write(path, [new Tensor("pad", "F32", [1], F32(9f)), new Tensor("w", "F32", [4], F32(10f, 20f, 30f, 40f))]);

        using var file = SafetensorsFile.Open(path);
        byte[] middle = new byte[8];
        file.ReadInto("w", 4, middle);
        middle.Should().Equal(F32(20f, 30f));

        file.Invoking(f => f.ReadInto("w", 12, new byte[8])).Should().Throw<ArgumentOutOfRangeException>();
        file.Invoking(f => f.ReadInto("w", -1, new byte[4])).Should().Throw<ArgumentOutOfRangeException>();
    }

    [Fact]
    public void ExposesMetadataAndEmptyMetadataWhenAbsent()
    {
        string with = _temp.File("meta.safetensors");
        Write(with, [new Tensor("w", "F32", [1], F32(1f))], new Dictionary<string, string> { ["format"] = "pt", ["note"] = "x" });
        string without = _temp.File("nometa.safetensors");
        Write(without, [new Tensor("w", "F32", [1], F32(1f))]);

        using (var file = SafetensorsFile.Open(with))
        {
            file.Metadata.Should().BeEquivalentTo(new Dictionary<string, string> { ["format"] = "pt", ["note"] = "x" });
            file.Tensors.Keys.Should().Equal("w");
        }

        using (var file = SafetensorsFile.Open(without))
        {
            file.Metadata.Should().BeEmpty();
        }
    }

    [Fact]
    public void AcceptsScalarAndEmptyTensors()
    {
        string path = _temp.File("odd.safetensors");
        Write(path, [new Tensor("scalar", "F32", [], F32(7f)), new Tensor("empty", "BF16", [0, 4], []), new Tensor("w", "F32", [1], F32(1f))]);

        using var file = SafetensorsFile.Open(path);
        file.GetInfo("scalar").ElementCount.Should().Be(1);
        file.GetInfo("scalar").Shape.Should().BeEmpty();
        file.GetInfo("empty").ElementCount.Should().Be(0);
        file.GetInfo("empty").ByteLength.Should().Be(0);
        file.ReadInto("empty", Span<byte>.Empty);
        byte[] scalar = new byte[4];
        file.ReadInto("scalar", scalar);
        scalar.Should().Equal(F32(7f));
    }

    [Fact]
    public void RejectsADestinationOfTheWrongSize()
    {
        string path = _temp.File("size.safetensors");
        Write(path, [new Tensor("w", "F32", [2], F32(1f, 2f))]);

        using var file = SafetensorsFile.Open(path);
        file.Invoking(f => f.ReadInto("w", new byte[7])).Should().Throw<ArgumentException>().WithMessage("*'w'*8*7*");
    }

    [Fact]
    public void MissingTensorNamesTheTensorAndFile()
    {
        string path = _temp.File("one.safetensors");
        Write(path, [new Tensor("w", "F32", [1], F32(1f))]);

        using var file = SafetensorsFile.Open(path);
        file.Contains("w").Should().BeTrue();
        file.Contains("lm_head.weight").Should().BeFalse();
        MissingTensorException e = file.Invoking(f => f.ReadInto("lm_head.weight", new byte[4])).Should().Throw<MissingTensorException>().Which;
        e.TensorName.Should().Be("lm_head.weight");
        e.Key.Should().Be("lm_head.weight");
        e.FilePath.Should().Be(path);
        e.Message.Should().Contain("'lm_head.weight'").And.Contain(path);
        file.Invoking(f => f.GetInfo("lm_head.weight")).Should().Throw<MissingTensorException>();
    }

    [Fact]
    public void ReadingAfterDisposeThrows()
    {
        string path = _temp.File("disposed.safetensors");
        Write(path, [new Tensor("w", "F32", [1], F32(1f))]);

        var file = SafetensorsFile.Open(path);
        file.Dispose();
        file.Invoking(f => f.ReadInto("w", new byte[4])).Should().Throw<ObjectDisposedException>();
    }

    [Fact]
    public void ReadsTheBF16FixtureWithShapesFromItsConfig()
    {
        // tiny-llama3: hidden 32, intermediate 96, 4 heads, 2 KV heads, head_dim 8, vocab 128256, 2 layers, tied embeddings.
        using var file = SafetensorsFile.Open(Path.Combine(FixturePaths.Model("tiny-llama3"), "model.safetensors"));
        file.Metadata.Should().Contain("format", "pt");
        file.Tensors.Values.Should().OnlyContain(t => t.DType == SafetensorsDType.BF16);
        file.Tensors.Should().HaveCount(1 + (2 * 9) + 1);
        file.Contains("lm_head.weight").Should().BeFalse("the embeddings are tied");
        file.GetInfo("model.embed_tokens.weight").Shape.Should().Equal(128256L, 32L);
        file.GetInfo("model.layers.1.self_attn.q_proj.weight").Shape.Should().Equal(4L * 8, 32L);
        file.GetInfo("model.layers.1.self_attn.k_proj.weight").Shape.Should().Equal(2L * 8, 32L);
        file.GetInfo("model.layers.1.self_attn.v_proj.weight").Shape.Should().Equal(2L * 8, 32L);
        file.GetInfo("model.layers.1.self_attn.o_proj.weight").Shape.Should().Equal(32L, 4L * 8);
        file.GetInfo("model.layers.1.mlp.gate_proj.weight").Shape.Should().Equal(96L, 32L);
        file.GetInfo("model.layers.1.mlp.down_proj.weight").Shape.Should().Equal(32L, 96L);
        file.GetInfo("model.norm.weight").Shape.Should().Equal(32L);

        // First values as read by an independent Python reader of the same file.
        byte[] q = new byte[file.GetInfo("model.layers.0.self_attn.q_proj.weight").ByteLength];
        file.ReadInto("model.layers.0.self_attn.q_proj.weight", q);
        q.AsSpan(0, 8).ToArray().Should().Equal(Bits16(0xBC98, 0xBED6, 0xBF08, 0xBD3E));
        byte[] norm = new byte[64];
        file.ReadInto("model.norm.weight", norm);
        WidenBF16(norm).Take(4).Should().Equal(0.85546875f, 1.0078125f, 1.1953125f, 1.1171875f);
    }

    [Fact]
    public void ReadsTheF32FixtureWithShapesFromItsConfig()
    {
        // tiny-llama2: hidden 48, intermediate 136, 6 heads, 3 KV heads, head_dim 8, vocab 320, 3 layers, untied lm_head.
        using var file = SafetensorsFile.Open(Path.Combine(FixturePaths.Model("tiny-llama2"), "model.safetensors"));
        file.Tensors.Values.Should().OnlyContain(t => t.DType == SafetensorsDType.F32);
        file.Tensors.Should().HaveCount(2 + (3 * 9) + 1);
        file.GetInfo("lm_head.weight").Shape.Should().Equal(320L, 48L);
        file.GetInfo("model.embed_tokens.weight").Shape.Should().Equal(320L, 48L);
        file.GetInfo("model.layers.2.self_attn.k_proj.weight").Shape.Should().Equal(3L * 8, 48L);
        file.GetInfo("model.layers.2.mlp.up_proj.weight").Shape.Should().Equal(136L, 48L);

        byte[] head = new byte[file.GetInfo("lm_head.weight").ByteLength];
        file.ReadInto("lm_head.weight", head);
        head.AsSpan(0, 16).ToArray().Should().Equal(F32(
            BitConverter.UInt32BitsToSingle(0x3D76E7C3), BitConverter.UInt32BitsToSingle(0xBF4490BB),
            BitConverter.UInt32BitsToSingle(0xBDC829FF), BitConverter.UInt32BitsToSingle(0xBE9F9592)));
        BinaryPrimitives.ReadSingleLittleEndian(head).Should().BeApproximately(0.060279619f, 1e-9f);
    }

    private static float[] WidenBF16(byte[] bytes)
        => Enumerable.Range(0, bytes.Length / 2)
            .Select(i => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(i * 2)) << 16))
            .ToArray();
}
