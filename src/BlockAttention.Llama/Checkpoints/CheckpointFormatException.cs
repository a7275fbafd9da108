namespace BlockAttention.Llama.Checkpoints;

/// <summary>
/// A checkpoint file (safetensors weights, <c>config.json</c>, a shard index) is malformed or uses
/// something this library does not support.
/// </summary>
/// <remarks>
/// The message always names the file and, where one is at fault, the tensor or configuration key and
/// its value, so that a user can fix or report the checkpoint without a debugger.
/// It derives from <see cref="IOException"/> (<see cref="InvalidDataException"/> is sealed), so one
/// <c>catch (IOException)</c> covers both a missing checkpoint file and a broken one.
/// </remarks>
public class CheckpointFormatException : IOException
{
    /// <summary>Creates an exception for <paramref name="filePath"/>.</summary>
    /// <param name="message">What is wrong; should already name the file and the key.</param>
    /// <param name="filePath">The file (or folder) at fault.</param>
    /// <param name="key">The tensor name or configuration key at fault, or <see langword="null"/> when the whole file is.</param>
    /// <param name="innerException">The underlying error, if any (for example a <see cref="System.Text.Json.JsonException"/>).</param>
    public CheckpointFormatException(string message, string filePath, string? key = null, Exception? innerException = null)
        : base(message, innerException)
    {
        FilePath = filePath;
        Key = key;
    }

    /// <summary>The file (or folder) at fault.</summary>
    public string FilePath { get; }

    /// <summary>The tensor name or configuration key at fault, or <see langword="null"/> when the whole file is.</summary>
    public string? Key { get; }
}
