namespace BlockAttention.Llama.Checkpoints;

/// <summary>A tensor was requested that the checkpoint does not contain.</summary>
/// <remarks>
/// Derives from <see cref="CheckpointFormatException"/> because, to a model loader, a checkpoint that
/// lacks a weight it needs is as unusable as a malformed one.
/// </remarks>
public sealed class MissingTensorException : CheckpointFormatException
{
    /// <summary>Creates an exception for a tensor missing from <paramref name="location"/>.</summary>
    /// <param name="tensorName">The tensor that was requested.</param>
    /// <param name="location">The safetensors file or checkpoint folder that was searched.</param>
    public MissingTensorException(string tensorName, string location)
        : base($"Tensor '{tensorName}' is not in checkpoint '{location}'.", location, tensorName)
    {
        TensorName = tensorName;
    }

    /// <summary>The tensor that was requested.</summary>
    public string TensorName { get; }
}
