using BlockAttention.Llama;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace BlockAttention.Hosting;

/// <summary>Loads the configured checkpoint; the loader logs what it reads, and progress is logged every quarter.</summary>
internal static partial class BlockAttentionModelLoader
{
    public static LlamaModel Load(BlockAttentionOptions options, ILogger logger)
    {
        string folder = Path.GetFullPath(options.Model!);
        try
        {
            return LlamaModel.Load(folder, new LlamaLoadOptions
            {
                Device = options.Device,
                DType = ToScalarType(options.DType),
                Logger = logger,
                Progress = new QuarterLogger(logger),
            });
        }
        catch (Exception e)
        {
            LogLoadFailed(logger, e, folder);
            throw;
        }
    }

    internal static torch.ScalarType ToScalarType(ModelDType dtype) => dtype switch
    {
        ModelDType.Float32 => torch.ScalarType.Float32,
        ModelDType.BFloat16 => torch.ScalarType.BFloat16,
        ModelDType.Float16 => torch.ScalarType.Float16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Loading the model: {LayersLoaded} of {Layers} layers")]
    private static partial void LogProgress(ILogger logger, int layersLoaded, int layers);

    [LoggerMessage(EventId = 11, Level = LogLevel.Error, Message = "Loading the checkpoint {Folder} failed")]
    private static partial void LogLoadFailed(ILogger logger, Exception exception, string folder);

    /// <summary>Logs at 25, 50, 75 and 100 % (synchronously: <see cref="Progress{T}"/> would post to the thread pool).</summary>
    private sealed class QuarterLogger(ILogger logger) : IProgress<ModelLoadProgress>
    {
        private int _lastQuarter;

        public void Report(ModelLoadProgress value)
        {
            int quarter = (int)Math.Floor(value.Fraction * 4);
            if (quarter > _lastQuarter)
            {
                _lastQuarter = quarter;
                LogProgress(logger, value.LayersLoaded, value.Layers);
            }
        }
    }
}
