namespace BlockAttention.Evaluation;

/// <summary>A RAG data file is malformed; the message names the file, the line and the key at fault.</summary>
public sealed class RagDataFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    public RagDataFormatException(string source, long line, string message, Exception? inner = null)
        : base($"{source}, line {line}: {message}", inner)
    {
        DataSource = source;
        Line = line;
    }

    /// <summary>The file (or other source) the record came from.</summary>
    public string DataSource { get; }

    /// <summary>The 1-based line number of the bad record.</summary>
    public long Line { get; }
}
