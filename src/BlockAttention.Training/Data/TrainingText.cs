namespace BlockAttention.Training.Data;

/// <summary>
/// One training example as text: the prompt's blocks (the last is the final block, which sees
/// every block before it) and the response the model should learn to write.
/// </summary>
/// <param name="Blocks">The prompt's blocks, at least one; <c>Blocks[^1]</c> is the final block.</param>
/// <param name="Response">The response text, without the end-of-text token (it is added when tokenizing).</param>
public sealed record TrainingText(IReadOnlyList<string> Blocks, string Response);
