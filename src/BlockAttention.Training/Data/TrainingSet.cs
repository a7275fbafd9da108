namespace BlockAttention.Training.Data;

/// <summary>The samples <see cref="TrainingSetBuilder"/> produced, with counts of what it read and dropped.</summary>
/// <param name="Samples">The samples, shuffled when a seed was given.</param>
/// <param name="Examples">Examples read (one per assistant turn of chat records).</param>
/// <param name="DroppedTooLong">Examples dropped because their full-attention form exceeds the maximum length.</param>
/// <param name="DroppedEmptyResponse">Examples dropped because their response has no token to learn.</param>
public sealed record TrainingSet(IReadOnlyList<TrainingSample> Samples, int Examples, int DroppedTooLong, int DroppedEmptyResponse)
{
    /// <summary>Total tokens over all samples.</summary>
    public long Tokens => Samples.Sum(s => (long)s.Length);

    /// <summary>Total loss tokens over all samples.</summary>
    public long LossTokens => Samples.Sum(s => (long)s.LossTokens);
}
