namespace BlockAttention.Llama.Checkpoints;

/// <summary>
/// A Hugging Face model folder: <c>config.json</c>, safetensors weights (one
/// <c>model.safetensors</c>, or shards listed by <c>model.safetensors.index.json</c>) and the
/// optional tokenizer and generation files.
/// </summary>
/// <remarks>
/// <para>
/// Opening reads and validates the config, the index and every shard's header, so a broken or
/// incomplete checkpoint fails before any weight is loaded; tensor bytes are read only on
/// <see cref="ReadInto(string, Span{byte})"/>. Shard handles stay open until <see cref="Dispose"/>.
/// </para>
/// <para>
/// As in <c>transformers</c>, a single <c>model.safetensors</c> wins over an index. With an index,
/// the index is the authority: exactly the tensors it lists are exposed. Reads are safe to run
/// concurrently.
/// </para>
/// </remarks>
public sealed class CheckpointFolder : IDisposable
{
    /// <summary>The model configuration file name.</summary>
    public const string ConfigFileName = "config.json";

    /// <summary>The weights file name of an unsharded checkpoint.</summary>
    public const string WeightsFileName = "model.safetensors";

    /// <summary>The shard index file name of a sharded checkpoint.</summary>
    public const string WeightsIndexFileName = "model.safetensors.index.json";

    private readonly IReadOnlyList<SafetensorsFile> _files;
    private readonly Dictionary<string, SafetensorsFile> _fileByTensor;
    private readonly List<string> _tensorNames;

    private CheckpointFolder(
        string directoryPath,
        LlamaConfig config,
        IReadOnlyList<SafetensorsFile> files,
        Dictionary<string, SafetensorsFile> fileByTensor,
        List<string> tensorNames,
        CheckpointFileLimits limits)
    {
        Limits = limits;
        DirectoryPath = directoryPath;
        Config = config;
        _files = files;
        _fileByTensor = fileByTensor;
        _tensorNames = tensorNames;
        TokenizerPath = OptionalFile(directoryPath, "tokenizer.json");
        TokenizerConfigPath = OptionalFile(directoryPath, "tokenizer_config.json");
        GenerationConfigPath = OptionalFile(directoryPath, "generation_config.json");
    }

    /// <summary>The size limits the folder was opened with; they also apply to the tokenizer and generation files read later.</summary>
    public CheckpointFileLimits Limits { get; }

    /// <summary>The full path of the folder.</summary>
    public string DirectoryPath { get; }

    /// <summary>The parsed <c>config.json</c>.</summary>
    public LlamaConfig Config { get; }

    /// <summary>The full paths of the safetensors files, in the order they were opened.</summary>
    public IReadOnlyList<string> WeightFiles => _files.Select(f => f.Path).ToList();

    /// <summary>Every tensor name, in file (or index) order.</summary>
    public IEnumerable<string> TensorNames => _tensorNames;

    /// <summary>The full path of <c>tokenizer.json</c>, or <see langword="null"/> when the folder has none.</summary>
    public string? TokenizerPath { get; }

    /// <summary>The full path of <c>tokenizer_config.json</c>, or <see langword="null"/> when the folder has none.</summary>
    public string? TokenizerConfigPath { get; }

    /// <summary>The full path of <c>generation_config.json</c>, or <see langword="null"/> when the folder has none.</summary>
    public string? GenerationConfigPath { get; }

    /// <summary>Opens the checkpoint in <paramref name="directory"/>.</summary>
    /// <param name="directory">The model folder.</param>
    /// <param name="limits">The largest size accepted for each kind of file (default: <see cref="CheckpointFileLimits.Default"/>).</param>
    /// <returns>The open checkpoint; dispose it to close the weight files.</returns>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException"><c>config.json</c> or the weights are missing.</exception>
    /// <exception cref="BlockAttention.IO.InputFileException">A file is not a regular file (a pipe, a device) or is over its limit.</exception>
    /// <exception cref="CheckpointFormatException">The config, the index or a weights file is malformed, or the index and its shards disagree.</exception>
    public static CheckpointFolder Open(string directory, CheckpointFileLimits? limits = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        limits ??= CheckpointFileLimits.Default;
        limits.Validate();
        string fullPath = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory));
        if (!Directory.Exists(fullPath))
        {
            throw new DirectoryNotFoundException($"Checkpoint folder '{fullPath}' does not exist.");
        }

        string configPath = Path.Combine(fullPath, ConfigFileName);
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"Checkpoint folder '{fullPath}' has no {ConfigFileName}.", configPath);
        }

        LlamaConfig config = LlamaConfig.Load(configPath, limits);

        string single = Path.Combine(fullPath, WeightsFileName);
        string index = Path.Combine(fullPath, WeightsIndexFileName);
        if (File.Exists(single))
        {
            return OpenSingle(fullPath, config, single, limits);
        }

        if (File.Exists(index))
        {
            return OpenSharded(fullPath, config, index, limits);
        }

        throw new FileNotFoundException(
            $"Checkpoint folder '{fullPath}' has neither {WeightsFileName} nor {WeightsIndexFileName}; only safetensors weights are supported.",
            single);
    }

    /// <summary>Opens <c>generation_config.json</c>, if the folder has one.</summary>
    /// <returns>Its token ids, or <see langword="null"/> when the folder has no such file.</returns>
    /// <exception cref="CheckpointFormatException">The file is malformed.</exception>
    public GenerationConfig? LoadGenerationConfig()
        => GenerationConfigPath is null ? null : GenerationConfig.Load(GenerationConfigPath, Limits);

    /// <summary>Whether the checkpoint holds a tensor called <paramref name="tensorName"/>.</summary>
    /// <param name="tensorName">The tensor name, e.g. <c>lm_head.weight</c>.</param>
    /// <returns><see langword="true"/> when the tensor is present.</returns>
    public bool Contains(string tensorName) => _fileByTensor.ContainsKey(tensorName);

    /// <summary>The dtype, shape and location of <paramref name="tensorName"/>.</summary>
    /// <param name="tensorName">The tensor name.</param>
    /// <returns>The tensor's description (its offsets are within its own shard).</returns>
    /// <exception cref="MissingTensorException">The checkpoint has no such tensor.</exception>
    public SafetensorsTensorInfo GetInfo(string tensorName) => FileOf(tensorName).GetInfo(tensorName);

    /// <summary>Reads the raw bytes of <paramref name="tensorName"/> into <paramref name="destination"/>.</summary>
    /// <param name="tensorName">The tensor name.</param>
    /// <param name="destination">Exactly <see cref="SafetensorsTensorInfo.ByteLength"/> bytes.</param>
    /// <exception cref="MissingTensorException">The checkpoint has no such tensor.</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is not the tensor's size.</exception>
    public void ReadInto(string tensorName, Span<byte> destination) => FileOf(tensorName).ReadInto(tensorName, destination);

    /// <summary>Reads part of <paramref name="tensorName"/>, from <paramref name="tensorOffset"/> bytes into it.</summary>
    /// <param name="tensorName">The tensor name.</param>
    /// <param name="tensorOffset">Where to start, in bytes from the start of the tensor.</param>
    /// <param name="destination">The bytes to fill; must not run past the end of the tensor.</param>
    /// <exception cref="MissingTensorException">The checkpoint has no such tensor.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range runs outside the tensor.</exception>
    public void ReadInto(string tensorName, long tensorOffset, Span<byte> destination)
        => FileOf(tensorName).ReadInto(tensorName, tensorOffset, destination);

    /// <summary>Closes every weight file.</summary>
    public void Dispose()
    {
        foreach (SafetensorsFile file in _files)
        {
            file.Dispose();
        }
    }

    /// <summary>The path of the weight file that holds <paramref name="tensorName"/>, for error messages.</summary>
    /// <exception cref="MissingTensorException">The checkpoint has no such tensor.</exception>
    public string FilePathOf(string tensorName) => FileOf(tensorName).Path;

    private SafetensorsFile FileOf(string tensorName)
        => _fileByTensor.TryGetValue(tensorName, out SafetensorsFile? file) ? file : throw new MissingTensorException(tensorName, DirectoryPath);

    private static CheckpointFolder OpenSingle(string directory, LlamaConfig config, string path, CheckpointFileLimits limits)
    {
        SafetensorsFile file = SafetensorsFile.Open(path, limits);
        var byTensor = file.TensorNames.ToDictionary(name => name, _ => file, StringComparer.Ordinal);
        return new CheckpointFolder(directory, config, [file], byTensor, [.. file.TensorNames], limits);
    }

    private static CheckpointFolder OpenSharded(string directory, LlamaConfig config, string indexPath, CheckpointFileLimits limits)
    {
        List<(string Tensor, string ShardPath)> weightMap = SafetensorsIndex.ReadWeightMap(indexPath, limits);
        var shards = new Dictionary<string, SafetensorsFile>(StringComparer.Ordinal);
        var opened = new List<SafetensorsFile>();
        try
        {
            var byTensor = new Dictionary<string, SafetensorsFile>(weightMap.Count, StringComparer.Ordinal);
            foreach ((string tensor, string shardPath) in weightMap)
            {
                if (!shards.TryGetValue(shardPath, out SafetensorsFile? shard))
                {
                    if (!File.Exists(shardPath))
                    {
                        throw new CheckpointFormatException(
                            $"Shard index '{indexPath}' maps tensor '{tensor}' to shard '{Path.GetFileName(shardPath)}', which does not exist in '{directory}'.",
                            indexPath, tensor);
                    }

                    shard = SafetensorsFile.Open(shardPath, limits);
                    shards.Add(shardPath, shard);
                    opened.Add(shard);
                }

                if (!shard.Contains(tensor))
                {
                    throw new CheckpointFormatException(
                        $"Shard index '{indexPath}' maps tensor '{tensor}' to shard '{shard.Path}', which does not contain it.",
                        indexPath, tensor);
                }

                if (!byTensor.TryAdd(tensor, shard))
                {
                    throw new CheckpointFormatException($"Shard index '{indexPath}' lists tensor '{tensor}' twice.", indexPath, tensor);
                }
            }

            return new CheckpointFolder(directory, config, opened, byTensor, weightMap.ConvertAll(entry => entry.Tensor), limits);
        }
        catch
        {
            foreach (SafetensorsFile shard in opened)
            {
                shard.Dispose();
            }

            throw;
        }
    }

    private static string? OptionalFile(string directory, string name)
    {
        string path = Path.Combine(directory, name);
        return File.Exists(path) ? path : null;
    }
}
