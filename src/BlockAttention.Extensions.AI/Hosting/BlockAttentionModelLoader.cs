using System.Diagnostics;
using BlockAttention.Llama;
using BlockAttention.Runtime;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace BlockAttention.Hosting;

/// <summary>Loads the configured checkpoint, logging what it does.</summary>
internal static partial class BlockAttentionModelLoader
{
    public static LlamaModel Load(BlockAttentionOptions options, ILogger logger)
    {
        string folder = Path.GetFullPath(options.Model!);
        LogLoading(logger, folder, options.Device, options.DType);
        var clock = Stopwatch.StartNew();
        LlamaModel model;
        try
        {
            model = LlamaModel.Load(folder, new LlamaLoadOptions { Device = options.Device, DType = ToScalarType(options.DType) });
        }
        catch (Exception e)
        {
            LogLoadFailed(logger, e, folder);
            throw;
        }

        var info = model.Info;
        LogLoaded(logger, folder, info.Layers, info.VocabSize, info.MaxPositions, info.KvBytesPerToken, clock.Elapsed.TotalMilliseconds, info.Fingerprint);
        if (TorchSharpNativeLibrary.PatchedCopyPath is { } patched)
        {
            LogPatchedBridge(logger, patched);
        }

        return model;
    }

    internal static torch.ScalarType ToScalarType(ModelDType dtype) => dtype switch
    {
        ModelDType.Float32 => torch.ScalarType.Float32,
        ModelDType.BFloat16 => torch.ScalarType.BFloat16,
        ModelDType.Float16 => torch.ScalarType.Float16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Loading the checkpoint {Folder} on {Device} as {DType}")]
    private static partial void LogLoading(ILogger logger, string folder, string device, ModelDType dtype);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information,
        Message = "Loaded {Folder}: {Layers} layers, vocabulary {Vocab}, up to {MaxPositions} positions, {KvBytesPerToken} bytes of KV cache per token, in {ElapsedMs:F0} ms (fingerprint {Fingerprint})")]
    private static partial void LogLoaded(ILogger logger, string folder, int layers, int vocab, int maxPositions, long kvBytesPerToken, double elapsedMs, string fingerprint);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information,
        Message = "TorchSharp's native bridge runs from a patched copy at {Path}: this system's libstdc++ lacks GLIBCXX_3.4.32")]
    private static partial void LogPatchedBridge(ILogger logger, string path);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "Loading the checkpoint {Folder} failed")]
    private static partial void LogLoadFailed(ILogger logger, Exception exception, string folder);
}
