namespace BlockAttention.Training.Optimization;

/// <summary>Linear warm-up from 0 to the peak, then cosine decay to <see cref="MinimumRatio"/> x peak at the last step.</summary>
/// <param name="Peak">The learning rate at the end of warm-up.</param>
/// <param name="WarmupSteps">Steps of linear warm-up.</param>
/// <param name="TotalSteps">All steps.</param>
/// <param name="MinimumRatio">The final rate as a fraction of the peak.</param>
public sealed record LearningRateSchedule(double Peak, long WarmupSteps, long TotalSteps, double MinimumRatio = 0)
{
    /// <summary>The rate of update number <paramref name="step"/> (0-based).</summary>
    public double At(long step)
    {
        if (step < WarmupSteps)
        {
            return Peak * (step + 1) / WarmupSteps;
        }

        long decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = Math.Clamp((double)(step - WarmupSteps) / decaySteps, 0, 1);
        double cosine = 0.5 * (1 + Math.Cos(Math.PI * progress));
        return Peak * (MinimumRatio + (1 - MinimumRatio) * cosine);
    }
}
