namespace BlockAttention.Generation;

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>An end-of-sequence token was generated.</summary>
    EndOfSequence,

    /// <summary>The text reached one of the stop strings.</summary>
    StopString,

    /// <summary>MaxNewTokens, or the model's position limit, was reached.</summary>
    Length,
}
