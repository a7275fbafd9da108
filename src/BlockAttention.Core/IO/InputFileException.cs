namespace BlockAttention.IO;

/// <summary>
/// An input file cannot be read safely: it is not a regular file (a named pipe, a device, a socket,
/// a directory) or it is larger than the limit set for its kind.
/// </summary>
/// <remarks>
/// The message names the file, its kind and, for a size problem, the limit. It derives from
/// <see cref="IOException"/>, so one <c>catch (IOException)</c> covers a missing, unreadable or
/// malformed input file alike.
/// </remarks>
public sealed class InputFileException : IOException
{
    /// <summary>Creates an exception about <paramref name="filePath"/>.</summary>
    /// <param name="message">What is wrong; should name the file.</param>
    /// <param name="filePath">The file at fault.</param>
    public InputFileException(string message, string filePath)
        : base(message)
    {
        FilePath = filePath;
    }

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }
}
