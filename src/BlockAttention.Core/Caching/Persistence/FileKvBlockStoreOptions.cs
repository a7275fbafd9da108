using Microsoft.Extensions.Logging;
using TorchSharp;

namespace BlockAttention.Caching.Persistence;

/// <summary>Options for <see cref="FileKvBlockStore"/>.</summary>
public sealed class FileKvBlockStoreOptions
{
    /// <summary>The directory that holds one file per block; created when missing. Several processes may share it.</summary>
    public required string Directory { get; init; }

    /// <summary>
    /// The most bytes of block files this process keeps in the directory (default 16 GiB); when a
    /// write exceeds it, the files read or written least recently are deleted first.
    /// </summary>
    public long MaxBytes { get; init; } = 16L << 30;

    /// <summary>The dtype of the model whose blocks are read (float32, bfloat16 or float16); a stored block of another dtype is a miss. Default float32.</summary>
    public torch.ScalarType DType { get; init; } = torch.ScalarType.Float32;

    /// <summary>The device blocks are loaded onto: the model's. Default <c>cpu</c>.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary>Where damaged files and failed writes are reported (default: nowhere).</summary>
    public ILoggerFactory? LoggerFactory { get; init; }
}
