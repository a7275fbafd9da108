namespace BlockAttention.Training;

/// <summary>A progress report of <see cref="Trainer"/>.</summary>
/// <param name="Step">Updates done.</param>
/// <param name="TotalSteps">Updates planned.</param>
/// <param name="Loss">Mean loss per response token over the steps since the last report.</param>
/// <param name="LearningRate">The rate of the last update.</param>
/// <param name="GradNorm">The last update's gradient norm before clipping.</param>
/// <param name="TokensPerSecond">Tokens (prompt and response) processed per second since the last report.</param>
/// <param name="Remaining">Estimated time to finish.</param>
/// <param name="EvalLoss">Mean loss per response token on the evaluation set, when this report follows an evaluation.</param>
public sealed record TrainingProgress(long Step, long TotalSteps, double Loss, double LearningRate, double GradNorm, double TokensPerSecond, TimeSpan Remaining, double? EvalLoss);
