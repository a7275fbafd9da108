using static TorchSharp.torch;

namespace BlockAttention.Training;

/// <summary>The training recipe. Defaults follow the reference's (AdamW, 3% warm-up, cosine decay, gradient clipping at 1).</summary>
public sealed class TrainerOptions
{
    /// <summary>Optimizer updates to run.</summary>
    public int Steps { get; set; } = 100;

    /// <summary>Samples per update.</summary>
    public int BatchSize { get; set; } = 8;

    /// <summary>
    /// Samples per forward/backward pass (padded to the longest of them); an update accumulates the
    /// gradients of its batch's passes. Lower it when a pass does not fit in memory.
    /// </summary>
    public int MicroBatchSize { get; set; } = 8;

    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; set; } = 2e-5;

    /// <summary>Fraction of the steps spent warming up.</summary>
    public double WarmupRatio { get; set; } = 0.03;

    /// <summary>AdamW's decoupled weight decay.</summary>
    public double WeightDecay { get; set; } = 0.0;

    /// <summary>Global gradient-norm clip; 0 disables it.</summary>
    public double MaxGradNorm { get; set; } = 1.0;

    /// <summary>Forward dtype: Float32, or BFloat16 (float32 master weights).</summary>
    public ScalarType ComputeDType { get; set; } = ScalarType.Float32;

    /// <summary>Dtype of saved weights.</summary>
    public ScalarType SaveDType { get; set; } = ScalarType.Float32;

    /// <summary>Evaluate every this many steps (0: only at the end).</summary>
    public int EvalEvery { get; set; }

    /// <summary>Save a resumable checkpoint every this many steps (0: only at the end).</summary>
    public int SaveEvery { get; set; }

    /// <summary>Report progress every this many steps.</summary>
    public int LogEvery { get; set; } = 10;

    /// <summary>LoRA adapters to train instead of every weight (merged into the saved checkpoint), or null.</summary>
    public LoraOptions? Lora { get; set; }

    /// <summary>Seed of the data order.</summary>
    public int Seed { get; set; } = 42;

    /// <summary>Throws when an option is out of range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Steps, 1, nameof(Steps));
        ArgumentOutOfRangeException.ThrowIfLessThan(BatchSize, 1, nameof(BatchSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(MicroBatchSize, 1, nameof(MicroBatchSize));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(LearningRate, nameof(LearningRate));
        ArgumentOutOfRangeException.ThrowIfNegative(WarmupRatio, nameof(WarmupRatio));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(WarmupRatio, 1, nameof(WarmupRatio));
        ArgumentOutOfRangeException.ThrowIfNegative(WeightDecay, nameof(WeightDecay));
        ArgumentOutOfRangeException.ThrowIfNegative(MaxGradNorm, nameof(MaxGradNorm));
        ArgumentOutOfRangeException.ThrowIfNegative(EvalEvery, nameof(EvalEvery));
        ArgumentOutOfRangeException.ThrowIfNegative(SaveEvery, nameof(SaveEvery));
        ArgumentOutOfRangeException.ThrowIfLessThan(LogEvery, 1, nameof(LogEvery));
        Lora?.Validate();
        if (ComputeDType is not (ScalarType.Float32 or ScalarType.BFloat16))
        {
            throw new ArgumentOutOfRangeException(nameof(ComputeDType), $"{ComputeDType} is not supported; use Float32 or BFloat16");
        }
    }
}
