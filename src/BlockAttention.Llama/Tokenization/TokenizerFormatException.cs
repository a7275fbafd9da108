namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// A tokenizer file that cannot be used: not valid JSON, a required key missing, or a value this library
/// does not support. The message names the file and the key or value at fault.
/// </summary>
/// <remarks>Derives from <see cref="FormatException"/> because <see cref="InvalidDataException"/> is sealed.</remarks>
public sealed class TokenizerFormatException : FormatException
{
    /// <summary>Creates an exception about <paramref name="filePath"/>.</summary>
    /// <param name="filePath">The file at fault.</param>
    /// <param name="message">What is wrong, naming the key or value.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public TokenizerFormatException(string filePath, string message, Exception? innerException = null)
        : base($"{filePath}: {message}", innerException)
    {
        FilePath = filePath;
    }

    /// <summary>Gets the path of the file at fault.</summary>
    public string FilePath { get; }
}
