using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Caching.Persistence;

/// <summary>
/// The serialized form of a <see cref="KvBlock"/>, shared by every persistent store: versioned,
/// self-describing and checksummed, so that a read returns exactly the states that were written for
/// exactly the tokens and model asked for, or fails with <see cref="KvBlockFormatException"/>.
/// </summary>
/// <remarks>
/// <para>Layout, all integers little-endian:</para>
/// <list type="table">
/// <item><term>8 bytes</term><description>magic <c>BAKVBLK\n</c></description></item>
/// <item><term>4 bytes</term><description>format version (<see cref="Version"/>)</description></item>
/// <item><term>4 bytes</term><description>header length <c>H</c>: the bytes of the header that follows</description></item>
/// <item><term>H bytes</term><description>header: fingerprint length (uint16) and UTF-8 bytes, dtype (int32,
/// TorchSharp's <see cref="ScalarType"/>), shape <c>[layers, kvHeads, tokens, headDim]</c> (4 × int32), token ids (tokens × int32)</description></item>
/// <item><term>P bytes</term><description>keys then values, each <c>layers·kvHeads·tokens·headDim</c> elements, row-major</description></item>
/// <item><term>16 bytes</term><description>XxHash128 of every byte before it</description></item>
/// </list>
/// <para>
/// Writing and reading stream layer by layer between the tensors' own memory and the stream: no
/// managed copy of the payload is made, and a block on a GPU is staged through host memory one
/// layer at a time. Every read verifies the checksum; the bytes are copied verbatim, so a
/// round trip is bit-exact for every dtype.
/// </para>
/// </remarks>
public static class KvBlockFormat
{
    /// <summary>
    /// The version of this layout. A model's fingerprint includes it, so a library with another
    /// version never reuses blocks written by this one, whatever the store.
    /// </summary>
    public const int Version = 1;

    /// <summary>Bytes before the header: magic, version, header length.</summary>
    public const int PreambleLength = 16;

    /// <summary>Bytes of the trailing checksum.</summary>
    public const int ChecksumLength = 16;

    private const int MaxFingerprintBytes = ushort.MaxValue;

    private static ReadOnlySpan<byte> Magic => "BAKVBLK\n"u8;

    /// <summary>The exact serialized size of <paramref name="block"/>, in bytes.</summary>
    public static long SerializedLength(KvBlock block)
    {
        ArgumentNullException.ThrowIfNull(block);
        return PreambleLength + HeaderLength(Encoding.UTF8.GetByteCount(block.Key.ModelFingerprint), block.Length) + block.SizeInBytes + ChecksumLength;
    }

    /// <summary>
    /// Writes <paramref name="block"/> to <paramref name="destination"/>. The caller holds a
    /// reference on the block for the duration.
    /// </summary>
    /// <exception cref="ArgumentException">The block's fingerprint is longer than 65535 UTF-8 bytes or its dtype is not serializable.</exception>
    public static void Write(KvBlock block, Stream destination)
    {
        ArgumentNullException.ThrowIfNull(block);
        ArgumentNullException.ThrowIfNull(destination);
        var keys = block.Keys;
        var values = block.Values;
        _ = ElementSize(keys.dtype) ?? throw new ArgumentException($"block {block.Key}: dtype {keys.dtype} cannot be serialized", nameof(block));
        byte[] fingerprint = Encoding.UTF8.GetBytes(block.Key.ModelFingerprint);
        if (fingerprint.Length > MaxFingerprintBytes)
        {
            throw new ArgumentException($"block {block.Key}: the model fingerprint is {fingerprint.Length} UTF-8 bytes, more than {MaxFingerprintBytes}", nameof(block));
        }

        var hash = new XxHash128();
        int headerLength = checked((int)HeaderLength(fingerprint.Length, block.Length));
        byte[] head = new byte[PreambleLength + headerLength];
        var span = head.AsSpan();
        Magic.CopyTo(span);
        BinaryPrimitives.WriteInt32LittleEndian(span[8..], Version);
        BinaryPrimitives.WriteInt32LittleEndian(span[12..], headerLength);
        int at = PreambleLength;
        BinaryPrimitives.WriteUInt16LittleEndian(span[at..], (ushort)fingerprint.Length);
        at += 2;
        fingerprint.CopyTo(span[at..]);
        at += fingerprint.Length;
        BinaryPrimitives.WriteInt32LittleEndian(span[at..], (int)keys.dtype);
        at += 4;
        for (int d = 0; d < 4; d++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], checked((int)keys.shape[d]));
            at += 4;
        }

        foreach (int token in block.Tokens)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[at..], token);
            at += 4;
        }

        hash.Append(head);
        destination.Write(head);
        WritePayload(keys, destination, hash);
        WritePayload(values, destination, hash);
        Span<byte> checksum = stackalloc byte[ChecksumLength];
        hash.GetCurrentHash(checksum);
        destination.Write(checksum);
    }

    /// <summary>
    /// Reads a block written by <see cref="Write"/> and returns it on <paramref name="device"/>,
    /// with its first reference held by the caller, only if it is intact and is exactly the block
    /// of <paramref name="key"/> for <paramref name="tokens"/> in <paramref name="dtype"/>.
    /// </summary>
    /// <param name="source">The serialized block, read from its current position.</param>
    /// <param name="key">The block asked for: its fingerprint must equal the one stored.</param>
    /// <param name="tokens">The token ids asked for: they must equal the ones stored.</param>
    /// <param name="dtype">The dtype the caller's model uses: it must equal the one stored.</param>
    /// <param name="device">Where the returned tensors live.</param>
    /// <param name="length">The serialized length when known (a file's length), checked against the header before the payload is read; null when unknown.</param>
    /// <exception cref="KvBlockFormatException">The bytes are not an intact block of this version for this key and these tokens; the message says what differs.</exception>
    /// <exception cref="IOException">The stream failed.</exception>
    public static KvBlock Read(Stream source, BlockKey key, ReadOnlySpan<int> tokens, ScalarType dtype, Device device, long? length = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(device);
        var hash = new XxHash128();
        Span<byte> preamble = stackalloc byte[PreambleLength];
        ReadExactly(source, preamble, "the preamble");
        if (!preamble[..8].SequenceEqual(Magic))
        {
            throw new KvBlockFormatException("not a serialized block: the magic bytes differ");
        }

        int version = BinaryPrimitives.ReadInt32LittleEndian(preamble[8..]);
        if (version != Version)
        {
            throw new KvBlockFormatException($"format version {version}; this library reads version {Version}");
        }

        byte[] expectedFingerprint = Encoding.UTF8.GetBytes(key.ModelFingerprint);
        long expectedHeader = HeaderLength(expectedFingerprint.Length, tokens.Length);
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(preamble[12..]);
        long longestHeader = HeaderLength(MaxFingerprintBytes, tokens.Length);
        if (headerLength < HeaderLength(0, 0) || headerLength > longestHeader)
        {
            throw new KvBlockFormatException($"header length {headerLength} is outside [{HeaderLength(0, 0)}, {longestHeader}] for {tokens.Length} tokens");
        }

        hash.Append(preamble);
        byte[] header = new byte[headerLength];
        ReadExactly(source, header, "the header");
        hash.Append(header);
        var h = header.AsSpan();
        int fingerprintLength = BinaryPrimitives.ReadUInt16LittleEndian(h);
        if (2 + fingerprintLength > headerLength || !h.Slice(2, fingerprintLength).SequenceEqual(expectedFingerprint))
        {
            string stored = 2 + fingerprintLength > headerLength ? "(longer than the header)" : $"'{Encoding.UTF8.GetString(h.Slice(2, fingerprintLength))}'";
            throw new KvBlockFormatException($"written by model {stored}, not by '{key.ModelFingerprint}'");
        }

        if (headerLength != expectedHeader)
        {
            throw new KvBlockFormatException($"header length {headerLength}, but a block of {tokens.Length} tokens has {expectedHeader}: a block of other tokens");
        }

        int at = 2 + fingerprintLength;
        var storedDType = (ScalarType)BinaryPrimitives.ReadInt32LittleEndian(h[at..]);
        at += 4;
        if (storedDType != dtype || ElementSize(storedDType) is not { } elementSize)
        {
            throw new KvBlockFormatException($"dtype {storedDType}, but {dtype} was asked for");
        }

        long[] shape = new long[4];
        for (int d = 0; d < 4; d++)
        {
            shape[d] = BinaryPrimitives.ReadInt32LittleEndian(h[at..]);
            at += 4;
            if (shape[d] <= 0)
            {
                throw new KvBlockFormatException($"shape [{string.Join(", ", shape[..(d + 1)])}...] has a dimension {shape[d]}");
            }
        }

        if (shape[2] != tokens.Length)
        {
            throw new KvBlockFormatException($"shape [{string.Join(", ", shape)}] is for {shape[2]} tokens, not {tokens.Length}");
        }

        for (int i = 0; i < tokens.Length; i++, at += 4)
        {
            if (BinaryPrimitives.ReadInt32LittleEndian(h[at..]) != tokens[i])
            {
                throw new KvBlockFormatException($"the stored token ids differ from the ones asked for at index {i}: a block of other tokens");
            }
        }

        // 64-bit arithmetic, checked: the dimensions come from the stream.
        long payloadPerTensor;
        try
        {
            payloadPerTensor = checked(shape[0] * shape[1] * shape[2] * shape[3] * elementSize);
        }
        catch (OverflowException e)
        {
            throw new KvBlockFormatException($"shape [{string.Join(", ", shape)}] overflows", e);
        }

        long total = PreambleLength + headerLength + 2 * payloadPerTensor + ChecksumLength;
        if (length is { } known && known != total)
        {
            throw new KvBlockFormatException($"{known} bytes, but the header describes {total}: truncated or extended");
        }

        Tensor? keys = null, values = null;
        try
        {
            keys = empty(shape, storedDType, CPU);
            ReadPayload(source, keys, hash, "the keys");
            values = empty(shape, storedDType, CPU);
            ReadPayload(source, values, hash, "the values");
            Span<byte> expected = stackalloc byte[ChecksumLength];
            Span<byte> actual = stackalloc byte[ChecksumLength];
            ReadExactly(source, expected, "the checksum");
            hash.GetCurrentHash(actual);
            if (!expected.SequenceEqual(actual))
            {
                throw new KvBlockFormatException("checksum mismatch: the bytes were damaged after they were written");
            }

            if (device.type != DeviceType.CPU || device.index > 0)
            {
                keys = MoveTo(keys, device);
                values = MoveTo(values, device);
            }

            var block = new KvBlock(key, tokens, keys, values);
            keys = values = null; // owned by the block now
            return block;
        }
        finally
        {
            keys?.Dispose();
            values?.Dispose();
        }
    }

    /// <summary>Element size of a dtype this format stores, or null.</summary>
    private static int? ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => 4,
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        ScalarType.Float64 => 8,
        _ => null,
    };

    private static long HeaderLength(int fingerprintBytes, int tokens) => 2L + fingerprintBytes + 4 + 16 + 4L * tokens;

    private static void WritePayload(Tensor tensor, Stream destination, XxHash128 hash)
    {
        // One layer at a time: a layer of a contiguous CPU tensor is a view of its memory; a GPU
        // layer is copied to host memory first, so host staging never exceeds one layer.
        for (long layer = 0; layer < tensor.shape[0]; layer++)
        {
            using var scope = NewDisposeScope();
            var slice = tensor[layer];
            if (slice.device_type != DeviceType.CPU)
            {
                slice = slice.cpu();
            }

            if (!slice.is_contiguous())
            {
                slice = slice.contiguous();
            }

            WriteChunks(slice, destination, hash);
        }
    }

    private static void WriteChunks(Tensor cpu, Stream destination, XxHash128 hash) =>
        ForEachSpan(cpu, bytes =>
        {
            hash.Append(bytes);
            destination.Write(bytes);
        });

    private static void ReadPayload(Stream source, Tensor tensor, XxHash128 hash, string what)
    {
        for (long layer = 0; layer < tensor.shape[0]; layer++)
        {
            using var slice = tensor[layer];
            ForEachSpan(slice, bytes =>
            {
                ReadExactly(source, bytes, what);
                hash.Append(bytes);
            });
        }
    }

    private delegate void SpanAction(Span<byte> bytes);

    /// <summary>
    /// Calls <paramref name="action"/> on the memory of a contiguous CPU tensor (one layer), in
    /// spans of at most 1 GiB (a <see cref="Span{T}"/> holds at most 2 GiB).
    /// </summary>
    private static void ForEachSpan(Tensor layer, SpanAction action)
    {
        const long MaxChunkBytes = 1L << 30;
        long bytes = layer.NumberOfElements * layer.ElementSize;
        if (bytes <= MaxChunkBytes)
        {
            action(layer.bytes);
            return;
        }

        using var flat = layer.reshape(-1);
        long perChunk = MaxChunkBytes / layer.ElementSize;
        for (long start = 0; start < flat.shape[0]; start += perChunk)
        {
            using var part = flat.narrow(0, start, Math.Min(perChunk, flat.shape[0] - start));
            action(part.bytes);
        }
    }

    private static Tensor MoveTo(Tensor cpu, Device device)
    {
        var moved = cpu.to(device);
        if (!ReferenceEquals(moved, cpu))
        {
            cpu.Dispose();
        }

        return moved;
    }

    private static void ReadExactly(Stream source, Span<byte> buffer, string what)
    {
        try
        {
            source.ReadExactly(buffer);
        }
        catch (EndOfStreamException e)
        {
            throw new KvBlockFormatException($"truncated: the stream ended inside {what}", e);
        }
    }
}
