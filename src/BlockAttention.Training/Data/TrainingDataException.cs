namespace BlockAttention.Training.Data;

/// <summary>A training-data file is malformed; the message names the file, the line and the key at fault.</summary>
public sealed class TrainingDataException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/> at <paramref name="line"/> (1-based; 0 when not about one line).</summary>
    public TrainingDataException(string path, long line, string message, Exception? innerException = null)
        : base(line > 0 ? $"{path}, line {line}: {message}" : $"{path}: {message}", innerException)
    {
        FilePath = path;
        Line = line;
    }

    /// <summary>The file at fault.</summary>
    public string FilePath { get; }

    /// <summary>The 1-based line at fault, or 0.</summary>
    public long Line { get; }
}
