using BlockAttention.Llama.Checkpoints;
using static BlockAttention.Tests.Checkpoints.SafetensorsWriter;

namespace BlockAttention.Tests.Checkpoints;

/// <summary>Every malformed file is rejected at Open with an error that names the file and what is wrong.</summary>
public sealed class SafetensorsFileValidationTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void MissingFileThrowsFileNotFoundWithThePath()
    {
        string path = _temp.File("absent.safetensors");

        FileNotFoundException e = FluentActions.Invoking(() => SafetensorsFile.Open(path)).Should().Throw<FileNotFoundException>().Which;
        e.FileName.Should().Be(path);
    }

    [Fact]
    public void FileShorterThanTheLengthPrefix()
    {
        string path = _temp.File("tiny.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);

        OpenFails(path).Message.Should().Contain("3 bytes");
    }

    [Fact]
    public void TruncatedFileNamesTheTensorThatRunsPastTheEnd()
    {
        string path = _temp.File("truncated.safetensors");
        Write(path, [new Tensor("a", "F32", [2], F32(1f, 2f)), new Tensor("b", "F32", [4], F32(1f, 2f, 3f, 4f))]);
        byte[] whole = File.ReadAllBytes(path);
        File.WriteAllBytes(path, whole[..^5]);

        CheckpointFormatException e = OpenFails(path, key: "b");
        e.Message.Should().Contain("[8, 24]").And.Contain("truncated");
    }

    [Fact]
    public void TruncatedInsideTheHeader()
    {
        string path = _temp.File("cut-header.safetensors");
        Write(path, [new Tensor("w", "F32", [1], F32(1f))]);
        File.WriteAllBytes(path, File.ReadAllBytes(path)[..20]);

        OpenFails(path).Message.Should().Contain("header");
    }

    [Fact]
    public void HeaderLengthPastTheEndOfTheFile()
    {
        string path = _temp.File("long-header.safetensors");
        WriteRaw(path, "{}", [], declaredHeaderLength: 4096);

        OpenFails(path).Message.Should().Contain("4096");
    }

    [Fact]
    public void HeaderLengthAboveTheSanityLimit()
    {
        string path = _temp.File("huge-header.safetensors");
        WriteRaw(path, "{}", [], declaredHeaderLength: ulong.MaxValue);

        OpenFails(path).Message.Should().Contain(ulong.MaxValue.ToString()).And.Contain("100000000");
    }

    [Fact]
    public void InvalidJson()
    {
        string path = _temp.File("bad-json.safetensors");
        WriteRaw(path, "{\"w\": {\"dtype\": \"F32\",", []);

        CheckpointFormatException e = OpenFails(path);
        e.Message.Should().Contain("not valid JSON");
        e.InnerException.Should().BeAssignableTo<System.Text.Json.JsonException>();
    }

    [Fact]
    public void HeaderThatIsNotAnObject()
    {
        string path = _temp.File("array.safetensors");
        WriteRaw(path, "[1, 2]", []);

        OpenFails(path).Message.Should().Contain("Array");
    }

    [Fact]
    public void OffsetsPastTheEndOfTheData()
    {
        string path = _temp.File("past-end.safetensors");
        WriteRaw(path, """{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}""", F32(1f, 2f, 3f));

        OpenFails(path, key: "w").Message.Should().Contain("[8, 16]").And.Contain("12 bytes");
    }

    [Fact]
    public void OffsetsThatEndBeforeTheyBegin()
    {
        string path = _temp.File("backwards.safetensors");
        WriteRaw(path, """{"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}""", F32(1f, 2f, 3f));

        OpenFails(path, key: "w").Message.Should().Contain("[8, 4]");
    }

    [Fact]
    public void ShapeThatDoesNotMatchTheByteCount()
    {
        string path = _temp.File("mismatch.safetensors");
        WriteRaw(path, """{"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 8]}}""", new byte[8]);

        OpenFails(path, key: "w").Message.Should().Contain("[2, 3]").And.Contain("12 bytes").And.Contain("8 bytes");
    }

    [Fact]
    public void OverlappingTensorsNameBothTensors()
    {
        string path = _temp.File("overlap.safetensors");
        WriteRaw(path,
            """{"first": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "second": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}""",
            new byte[12]);

        OpenFails(path, key: "second").Message.Should().Contain("'first'").And.Contain("overlap");
    }

    [Theory]
    [InlineData("I64")]
    [InlineData("F64")]
    [InlineData("U8")]
    [InlineData("bf16")]
    [InlineData("F8_E4M3")]
    public void UnsupportedDTypeNamesTheTensorAndTheDType(string dtype)
    {
        string path = _temp.File("dtype.safetensors");
        WriteRaw(path, $$$"""{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "step": {"dtype": "{{{dtype}}}", "shape": [1], "data_offsets": [4, 12]}}""", new byte[12]);

        OpenFails(path, key: "step").Message.Should().Contain($"'{dtype}'").And.Contain("unsupported dtype");
    }

    [Theory]
    [InlineData("dtype", """{"w": {"shape": [1], "data_offsets": [0, 4]}}""")]
    [InlineData("shape", """{"w": {"dtype": "F32", "data_offsets": [0, 4]}}""")]
    [InlineData("data_offsets", """{"w": {"dtype": "F32", "shape": [1]}}""")]
    public void EntryMissingAField(string field, string header)
    {
        string path = _temp.File("field.safetensors");
        WriteRaw(path, header, new byte[4]);

        OpenFails(path, key: "w").Message.Should().Contain($"'{field}'");
    }

    [Theory]
    [InlineData("""{"w": {"dtype": 3, "shape": [1], "data_offsets": [0, 4]}}""", "'dtype'")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}""", "-1")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}}""", "1.5")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}""", "data_offsets")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}""", "data_offsets")]
    [InlineData("""{"w": [1, 2]}""", "Array")]
    [InlineData("""{"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 4]}}""", "overflows")]
    public void EntryWithAMalformedField(string header, string expected)
    {
        string path = _temp.File("malformed.safetensors");
        WriteRaw(path, header, new byte[4]);

        OpenFails(path, key: "w").Message.Should().Contain(expected);
    }

    [Fact]
    public void DuplicateTensorName()
    {
        string path = _temp.File("duplicate.safetensors");
        WriteRaw(path,
            """{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}""",
            new byte[8]);

        OpenFails(path, key: "w").Message.Should().Contain("twice");
    }

    [Fact]
    public void MetadataValueThatIsNotAString()
    {
        string path = _temp.File("metadata.safetensors");
        WriteRaw(path, """{"__metadata__": {"format": "pt", "epoch": 3}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}""", new byte[4]);

        OpenFails(path, key: "epoch").Message.Should().Contain("__metadata__");
    }

    private static CheckpointFormatException OpenFails(string path, string? key = null)
    {
        CheckpointFormatException e = FluentActions.Invoking(() => SafetensorsFile.Open(path))
            .Should().Throw<CheckpointFormatException>().Which;
        e.FilePath.Should().Be(path);
        e.Message.Should().Contain(path);
        e.Key.Should().Be(key);
        if (key is not null)
        {
            e.Message.Should().Contain($"'{key}'");
        }

        return e;
    }
}
