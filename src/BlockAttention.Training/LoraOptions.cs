namespace BlockAttention.Training;

/// <summary>
/// Low-rank adapters (LoRA): each targeted projection <c>W</c> of every layer becomes
/// <c>W + (Alpha / Rank) * B A</c> with <c>A</c> <c>[Rank, in]</c> and <c>B</c> <c>[out, Rank]</c>;
/// only <c>A</c> and <c>B</c> are trained, and saved checkpoints hold the merged weights.
/// </summary>
public sealed class LoraOptions
{
    /// <summary>The projections that can carry an adapter, by their Hugging Face names.</summary>
    public static IReadOnlyList<string> KnownTargets { get; } = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// <summary>The adapters' rank.</summary>
    public int Rank { get; set; } = 8;

    /// <summary>The scale numerator: the update is <c>Alpha / Rank * B A</c>.</summary>
    public double Alpha { get; set; } = 16;

    /// <summary>The projections that get adapters (names from <see cref="KnownTargets"/>).</summary>
    public IReadOnlyList<string> Targets { get; set; } = ["q_proj", "k_proj", "v_proj", "o_proj"];

    /// <summary>Seed of <c>A</c>'s random initialisation (<c>B</c> starts at zero, so the model starts unchanged).</summary>
    public int Seed { get; set; }

    /// <summary>Throws when an option is out of range.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(Rank, 1, nameof(Rank));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(Alpha, nameof(Alpha));
        ArgumentNullException.ThrowIfNull(Targets, nameof(Targets));
        if (Targets.Count == 0)
        {
            throw new ArgumentException("LoRA needs at least one target projection", nameof(Targets));
        }

        foreach (string target in Targets)
        {
            if (!KnownTargets.Contains(target))
            {
                throw new ArgumentException($"'{target}' is not a LoRA target; use {string.Join(", ", KnownTargets)}", nameof(Targets));
            }
        }
    }
}
