namespace BlockAttention.Training.Data;

/// <summary>
/// One tokenized training sample: the prompt blocks' tokens then the response's, the labels
/// (<see cref="IgnoreLabel"/> over the prompt, the token itself over the response), and how the
/// sample attends.
/// </summary>
/// <param name="InputIds">Every token of the sample, prompt first.</param>
/// <param name="Labels">One label per token: <see cref="IgnoreLabel"/> over the prompt, the token id over the response.</param>
/// <param name="LocalBlockLengths">The token counts of the local blocks (every block but the final one), in order.</param>
/// <param name="BlockAttention">True: local blocks see only themselves (the block mask); false: ordinary causal attention.</param>
public sealed record TrainingSample(int[] InputIds, int[] Labels, int[] LocalBlockLengths, bool BlockAttention)
{
    /// <summary>The label that excludes a token from the loss (PyTorch's <c>ignore_index</c>).</summary>
    public const int IgnoreLabel = -100;

    /// <summary>The number of tokens.</summary>
    public int Length => InputIds.Length;

    /// <summary>The number of tokens the loss counts: labelled tokens that have a token before them to predict them.</summary>
    public int LossTokens
    {
        get
        {
            int count = 0;
            for (int i = 1; i < Labels.Length; i++)
            {
                count += Labels[i] == IgnoreLabel ? 0 : 1;
            }

            return count;
        }
    }
}
