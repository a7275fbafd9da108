namespace BlockAttention.Llama.Checkpoints;

/// <summary>
/// The special token ids from a Hugging Face <c>generation_config.json</c>, which may list more stop
/// tokens than <c>config.json</c> (Llama 3.1 Instruct stops on three).
/// </summary>
public sealed record GenerationConfig
{
    /// <summary>The beginning-of-sequence token id (<c>bos_token_id</c>), if named.</summary>
    public int? BosTokenId { get; init; }

    /// <summary>The end-of-sequence token ids (<c>eos_token_id</c>, one id or a list); empty if none.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = [];

    /// <summary>The padding token id (<c>pad_token_id</c>), if named.</summary>
    public int? PadTokenId { get; init; }

    /// <summary>Reads <paramref name="path"/>.</summary>
    /// <param name="path">A <c>generation_config.json</c> file.</param>
    /// <param name="limits">The largest file accepted (<see cref="CheckpointFileLimits.ConfigJsonBytes"/>; default: <see cref="CheckpointFileLimits.Default"/>).</param>
    /// <returns>The token ids it names.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="BlockAttention.IO.InputFileException">The path is not a regular file, or the file is over the limit.</exception>
    /// <exception cref="CheckpointFormatException">The file is not a JSON object or a token id has the wrong type.</exception>
    public static GenerationConfig Load(string path, CheckpointFileLimits? limits = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = Path.GetFullPath(path);
        return ConfigObject.Read(ConfigObject.ReadFile(fullPath, "generation_config.json", limits), fullPath, Read);
    }

    /// <summary>Parses the text of a <c>generation_config.json</c>.</summary>
    /// <param name="json">The file's content.</param>
    /// <param name="sourcePath">Where it came from, for error messages.</param>
    /// <returns>The token ids it names.</returns>
    /// <exception cref="CheckpointFormatException">The text is not a JSON object or a token id has the wrong type.</exception>
    public static GenerationConfig Parse(string json, string sourcePath)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(sourcePath);
        return ConfigObject.Read(json, sourcePath, Read);
    }

    private static GenerationConfig Read(ConfigObject root) => new()
    {
        BosTokenId = root.GetOptionalTokenId("bos_token_id"),
        EosTokenIds = root.GetTokenIdOrList("eos_token_id"),
        PadTokenId = root.GetOptionalInt32("pad_token_id"),
    };
}
