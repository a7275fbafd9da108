namespace BlockAttention.Llama.Checkpoints;

/// <summary>How the rotary embedding's inverse frequencies are derived from <c>theta</c>.</summary>
public enum RopeType
{
    /// <summary><c>inv_freq[i] = theta^(-2i/head_dim)</c>, unscaled (<c>rope_type</c> <c>default</c>, or no scaling at all).</summary>
    Default,

    /// <summary>
    /// Llama 3.1 frequency scaling (<c>rope_type</c> <c>llama3</c>): long wavelengths divided by
    /// <see cref="RopeSettings.Factor"/>, short ones kept, a smooth blend in between.
    /// </summary>
    Llama3,
}

/// <summary>
/// The rotary position embedding of a Llama model, from either config layout: the classic
/// <c>rope_theta</c> + <c>rope_scaling</c> keys or the <c>rope_parameters</c> object that
/// <c>transformers</c> 5 writes.
/// </summary>
/// <remarks>
/// Only the scalings this library implements can be represented: a config asking for another
/// (<c>linear</c>, <c>dynamic</c>, <c>yarn</c>, ...) is rejected when parsed, because silently using
/// unscaled frequencies would produce a model that runs but answers wrongly.
/// </remarks>
public sealed record RopeSettings
{
    /// <summary>The base of the inverse frequencies (<c>rope_theta</c>), e.g. 10000 or 500000.</summary>
    public required double Theta { get; init; }

    /// <summary>The frequency scaling.</summary>
    public required RopeType Type { get; init; }

    /// <summary>For <see cref="RopeType.Llama3"/>: the divisor of low frequencies (<c>factor</c>, e.g. 8); otherwise <see langword="null"/>.</summary>
    public double? Factor { get; init; }

    /// <summary>For <see cref="RopeType.Llama3"/>: <c>low_freq_factor</c> (e.g. 1); otherwise <see langword="null"/>.</summary>
    public double? LowFreqFactor { get; init; }

    /// <summary>For <see cref="RopeType.Llama3"/>: <c>high_freq_factor</c> (e.g. 4); otherwise <see langword="null"/>.</summary>
    public double? HighFreqFactor { get; init; }

    /// <summary>For <see cref="RopeType.Llama3"/>: <c>original_max_position_embeddings</c>, the context the frequencies were trained for (e.g. 8192); otherwise <see langword="null"/>.</summary>
    public int? OriginalMaxPositionEmbeddings { get; init; }
}
