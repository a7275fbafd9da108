using BlockAttention.Llama;
using static TorchSharp.torch;

namespace BlockAttention.Cli.Bench;

/// <summary>What <c>blockattn bench</c> was asked to run.</summary>
internal sealed record BenchOptions
{
    public static IReadOnlyList<int> CpuLengths { get; } = [512, 1024, 2048, 4096];

    public static IReadOnlyList<int> GpuLengths { get; } = [512, 1024, 2048, 4096, 8192, 16384, 32768];

    /// <summary>A preset name (random weights), or null when <see cref="ModelDirectory"/> is set.</summary>
    public string? Preset { get; init; }

    /// <summary>A checkpoint folder, or null when <see cref="Preset"/> is set.</summary>
    public string? ModelDirectory { get; init; }

    public required string Device { get; init; }

    public required ScalarType DType { get; init; }

    public required IReadOnlyList<int> Lengths { get; init; }

    public required int Warmup { get; init; }

    public required int Repeats { get; init; }

    public required int DecodeTokens { get; init; }

    /// <summary>Consecutive block requests for the memory soak; 0: no soak.</summary>
    public required int Soak { get; init; }

    public required string OutDirectory { get; init; }

    /// <summary>A label for the machine (e.g. the GPU's name where the driver cannot tell it).</summary>
    public string? Machine { get; init; }

    /// <summary>The seed of the random weights and of the prompts' token ids.</summary>
    public int Seed { get; init; }

    /// <summary>Full-attention TTFT measured elsewhere on the same machine, to check ours against (<c>--baseline</c>).</summary>
    public BenchBaseline? Baseline { get; init; }

    /// <summary><c>--expect-speedup</c>: the least full / block TTFT at the longest length.</summary>
    public double? ExpectSpeedup { get; init; }

    /// <summary><c>--expect-reencode-share</c>: the largest share (0 to 1) of block TTFT that re-encoding + assembly may take at the longest length.</summary>
    public double? ExpectReencodeShare { get; init; }

    /// <summary><c>--expect-block-ttft</c>: the most milliseconds block TTFT may take at the longest length.</summary>
    public double? ExpectBlockTtftMs { get; init; }

    /// <summary><c>--concurrency</c>: the client concurrency levels of the many-requests measurement; empty: none.</summary>
    public IReadOnlyList<int> Concurrency { get; init; } = [];

    /// <summary>The prompt length of the many-requests measurement: the longest of <c>--lengths</c>, 1024 without it.</summary>
    public int ConcurrencyLength { get; init; } = 1024;

    /// <summary><c>--arrival-rate</c>: requests per second of the Poisson arrivals.</summary>
    public double ArrivalRate { get; init; } = 20;

    /// <summary><c>--requests</c>: requests per concurrency level; null: twice the level, at least 8.</summary>
    public int? ConcurrencyRequests { get; init; }

    /// <summary><c>--requests N1,N2,..</c>: requests per concurrency level, one count per level; null: <see cref="ConcurrencyRequests"/>.</summary>
    public IReadOnlyList<int>? RequestsPerLevel { get; init; }

    /// <summary>
    /// <c>--check-exact</c>: every request of every level runs once more alone on the batching
    /// session, and its tokens must equal the batched run's (half the requests greedy, half sampled with their own seed).
    /// </summary>
    public bool CheckExact { get; init; }

    /// <summary><c>--max-batch</c>: the batching session's <see cref="BlockSessionOptions.MaxBatchSize"/>.</summary>
    public int MaxBatchSize { get; init; } = new BlockSessionOptions().MaxBatchSize;

    /// <summary><c>--step-threads</c>: <see cref="BlockSessionOptions.StepThreads"/> of both sessions (null: libtorch's setting).</summary>
    public int? StepThreads { get; init; }

    /// <summary><c>--expect-batch-speedup</c>: the least batched / one-at-a-time throughput at the highest concurrency level.</summary>
    public double? ExpectBatchSpeedup { get; init; }

    /// <summary>The name used in reports and file names.</summary>
    public string ModelName => Preset ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(ModelDirectory!)));

    public string DeviceKind => Device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) ? "cuda" : "cpu";

    /// <summary>Creates or loads the model this run measures.</summary>
    public LlamaModel CreateModel()
    {
        var load = new LlamaLoadOptions { Device = Device, DType = DType };
        return Preset is not null ? LlamaModel.CreateRandom(Preset, load, Seed) : LlamaModel.Load(ModelDirectory!, load);
    }
}
