using System.Diagnostics;
using StackExchange.Redis;

namespace BlockAttention.Redis;

/// <summary>
/// Reads a Redis string front to back in pieces (GETRANGE), so a large value is never held whole
/// in managed memory. Not atomic across pieces: a value replaced meanwhile fails the block's checksum.
/// </summary>
internal sealed class RedisRangeStream(IDatabase database, RedisKey key, long length, int chunkBytes, long deadline) : Stream
{
    private long _position;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => length;

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_position >= length || buffer.Length == 0)
        {
            return 0;
        }

        RedisDeadline.ThrowIfPassed(deadline);
        long want = Math.Min(Math.Min(buffer.Length, chunkBytes), length - _position);
        byte[]? piece = (byte[]?)database.StringGetRange(key, _position, _position + want - 1);
        if (piece is null || piece.Length == 0)
        {
            return 0; // gone meanwhile (expired or evicted): the reader sees a truncated block
        }

        int got = Math.Min(piece.Length, buffer.Length);
        piece.AsSpan(0, got).CopyTo(buffer);
        _position += got;
        return got;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>Checks of an operation's overall deadline (a <see cref="Stopwatch"/> timestamp).</summary>
internal static class RedisDeadline
{
    public static long After(TimeSpan timeout) => Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);

    public static void ThrowIfPassed(long deadline)
    {
        if (Stopwatch.GetTimestamp() > deadline)
        {
            throw new TimeoutException("the Redis operation took longer than its timeout");
        }
    }
}
