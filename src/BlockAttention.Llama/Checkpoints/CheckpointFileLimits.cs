namespace BlockAttention.Llama.Checkpoints;

/// <summary>
/// The largest size accepted for each kind of file in a checkpoint folder. A file over its limit is
/// refused with an <see cref="BlockAttention.IO.InputFileException"/> before it is parsed.
/// </summary>
/// <remarks>
/// The defaults are far above what real checkpoints use (a Llama 3 <c>tokenizer.json</c> is 9 MB, a
/// <c>config.json</c> a few kilobytes) and low enough that a corrupt or hostile file cannot exhaust
/// memory. Raise one through <see cref="LlamaLoadOptions.FileLimits"/> if a genuine file needs it.
/// Tensor data has no limit of its own: its size is fixed by the safetensors header.
/// </remarks>
public sealed record CheckpointFileLimits
{
    /// <summary>The limits used when none are given.</summary>
    public static CheckpointFileLimits Default { get; } = new();

    /// <summary>The largest <c>config.json</c> (or <c>generation_config.json</c>), in bytes. Default 16 MiB.</summary>
    public long ConfigJsonBytes { get; init; } = 16L << 20;

    /// <summary>The largest <c>model.safetensors.index.json</c>, in bytes. Default 64 MiB.</summary>
    public long ShardIndexBytes { get; init; } = 64L << 20;

    /// <summary>
    /// The largest safetensors header (the JSON after the 8-byte length), in bytes. Default
    /// 100,000,000, as in the reference safetensors implementation.
    /// </summary>
    public long SafetensorsHeaderBytes { get; init; } = SafetensorsFile.MaxHeaderLength;

    /// <summary>The largest <c>tokenizer.json</c>, in bytes. Default 128 MiB.</summary>
    public long TokenizerJsonBytes { get; init; } = 128L << 20;

    /// <summary>The largest <c>tokenizer_config.json</c>, in bytes. Default 16 MiB.</summary>
    public long TokenizerConfigJsonBytes { get; init; } = 16L << 20;

    /// <summary>Checks that every limit is positive and that a file of that size can be held in one array.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A limit is zero, negative or larger than an array can hold.</exception>
    public void Validate()
    {
        Check(ConfigJsonBytes, nameof(ConfigJsonBytes));
        Check(ShardIndexBytes, nameof(ShardIndexBytes));
        Check(SafetensorsHeaderBytes, nameof(SafetensorsHeaderBytes));
        Check(TokenizerJsonBytes, nameof(TokenizerJsonBytes));
        Check(TokenizerConfigJsonBytes, nameof(TokenizerConfigJsonBytes));
    }

    internal static string Hint(string property) => $"{nameof(LlamaLoadOptions)}.{nameof(LlamaLoadOptions.FileLimits)}.{property}";

    private static void Check(long value, string name)
    {
        if (value <= 0 || value >= Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{nameof(CheckpointFileLimits)}.{name} must be between 1 and {Array.MaxLength - 1} bytes.");
        }
    }
}
