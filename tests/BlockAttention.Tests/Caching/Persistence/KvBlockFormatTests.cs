using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using BlockAttention.Caching;
using BlockAttention.Caching.Persistence;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Caching.Persistence;

public class KvBlockFormatTests
{
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    [InlineData(ScalarType.Float16)]
    public void Round_trip_is_bit_exact(ScalarType dtype)
    {
        int[] tokens = TestBlocks.Tokens(3, 7);
        var block = TestBlocks.Random(tokens, dtype);
        try
        {
            using var stream = new MemoryStream();
            KvBlockFormat.Write(block, stream);
            stream.Length.Should().Be(KvBlockFormat.SerializedLength(block));
            stream.Position = 0;
            var read = KvBlockFormat.Read(stream, block.Key, tokens, dtype, CPU, stream.Length);
            try
            {
                read.Keys.dtype.Should().Be(dtype);
                read.Keys.shape.Should().Equal(block.Keys.shape);
                read.Keys.bytes.ToArray().Should().Equal(block.Keys.bytes.ToArray());
                read.Values.bytes.ToArray().Should().Equal(block.Values.bytes.ToArray());
                read.Tokens.ToArray().Should().Equal(tokens);
            }
            finally
            {
                read.Release();
            }
        }
        finally
        {
            block.Release();
        }
    }

    [Fact]
    public void Bytes_follow_the_documented_layout()
    {
        // Parsed here independently of the reader: magic, version, header, payload, XxHash128 trailer.
        int[] tokens = [5, 6, 7];
        var block = TestBlocks.Random(tokens);
        byte[] bytes;
        using (var stream = new MemoryStream())
        {
            KvBlockFormat.Write(block, stream);
            bytes = stream.ToArray();
        }

        try
        {
            Encoding.ASCII.GetString(bytes, 0, 8).Should().Be("BAKVBLK\n");
            BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(8)).Should().Be(KvBlockFormat.Version);
            int headerLength = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(12));
            byte[] headerBytes = bytes.AsSpan(16, headerLength).ToArray();
            var header = headerBytes.AsSpan();
            int fingerprintLength = BinaryPrimitives.ReadUInt16LittleEndian(header);
            Encoding.UTF8.GetString(header.Slice(2, fingerprintLength)).Should().Be(TestBlocks.Fingerprint);
            int at = 2 + fingerprintLength;
            BinaryPrimitives.ReadInt32LittleEndian(header[at..]).Should().Be((int)ScalarType.Float32);
            var shape = Enumerable.Range(0, 4).Select(d => BinaryPrimitives.ReadInt32LittleEndian(headerBytes.AsSpan(at + 4 + 4 * d))).ToArray();
            shape.Should().Equal(TestBlocks.Layers, TestBlocks.KvHeads, 3, TestBlocks.HeadDim);
            var storedTokens = Enumerable.Range(0, 3).Select(i => BinaryPrimitives.ReadInt32LittleEndian(headerBytes.AsSpan(at + 20 + 4 * i))).ToArray();
            storedTokens.Should().Equal(tokens);
            long payload = TestBlocks.SizeOf(3);
            bytes.Length.Should().Be((int)(16 + headerLength + payload + 16));
            bytes.AsSpan(16 + headerLength, (int)payload / 2).ToArray().Should().Equal(block.Keys.bytes.ToArray());
            XxHash128.Hash(bytes.AsSpan(0, bytes.Length - 16)).Should().Equal(bytes[^16..]);
        }
        finally
        {
            block.Release();
        }
    }

    [Fact]
    public void A_read_for_another_dtype_fails()
    {
        int[] tokens = [1, 2];
        var block = TestBlocks.Random(tokens);
        using var stream = new MemoryStream();
        KvBlockFormat.Write(block, stream);
        block.Release();
        stream.Position = 0;
        var act = () => KvBlockFormat.Read(stream, block.Key, tokens, ScalarType.BFloat16, CPU);
        act.Should().Throw<KvBlockFormatException>().WithMessage("*dtype Float32*BFloat16*");
    }
}
