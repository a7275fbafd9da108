namespace BlockAttention.Caching.Persistence;

/// <summary>
/// A serialized block could not be used: it is truncated, damaged, of another format version, or
/// encodes other tokens or another model than asked for. Stores treat it as a miss.
/// </summary>
public sealed class KvBlockFormatException : Exception
{
    /// <summary>Creates the exception with a message that names what was wrong.</summary>
    public KvBlockFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a message and the error that caused it.</summary>
    public KvBlockFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
