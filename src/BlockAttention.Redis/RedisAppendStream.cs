using StackExchange.Redis;

namespace BlockAttention.Redis;

/// <summary>
/// Writes a Redis string in pieces: the first piece with SET (and an expiry), the rest with APPEND,
/// so a large value is never held whole in managed memory. Used on a temporary key that is renamed
/// into place once complete.
/// </summary>
internal sealed class RedisAppendStream(IDatabase database, RedisKey key, TimeSpan expiry, int chunkBytes, long deadline) : Stream
{
    private readonly byte[] _buffer = new byte[chunkBytes];
    private int _buffered;
    private bool _started;
    private long _written;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => _written + _buffered;

    public override long Position
    {
        get => Length;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            int take = Math.Min(buffer.Length, _buffer.Length - _buffered);
            buffer[..take].CopyTo(_buffer.AsSpan(_buffered));
            _buffered += take;
            buffer = buffer[take..];
            if (_buffered == _buffer.Length)
            {
                Send();
            }
        }
    }

    /// <summary>Sends what is buffered.</summary>
    public override void Flush()
    {
        if (_buffered > 0 || !_started)
        {
            Send();
        }
    }

    private void Send()
    {
        RedisDeadline.ThrowIfPassed(deadline);
        var piece = new ReadOnlyMemory<byte>(_buffer, 0, _buffered);
        if (!_started)
        {
            // The temporary key expires by itself if the writer dies before renaming it.
            if (!database.StringSet(key, piece, expiry))
            {
                throw new RedisException($"SET {key} was refused");
            }

            _started = true;
        }
        else
        {
            long length = database.StringAppend(key, piece);
            if (length != _written + _buffered)
            {
                throw new RedisException($"APPEND {key} left {length} bytes, expected {_written + _buffered}: the key changed meanwhile");
            }
        }

        _written += _buffered;
        _buffered = 0;
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
