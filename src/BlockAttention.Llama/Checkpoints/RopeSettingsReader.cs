namespace BlockAttention.Llama.Checkpoints;

/// <summary>Reads <see cref="RopeSettings"/> from either <c>config.json</c> layout.</summary>
/// <remarks>
/// Classic layout: top-level <c>rope_theta</c>, and <c>rope_scaling</c> (null, or an object with
/// <c>rope_type</c>, or the legacy <c>type</c>, and the scaling's parameters).
/// <c>transformers</c> 5 layout: one <c>rope_parameters</c> object holding <c>rope_type</c>,
/// <c>rope_theta</c> and the scaling's parameters. When a config carries both, they must agree.
/// </remarks>
internal static class RopeSettingsReader
{
    // transformers' LlamaConfig default, used when a (typically older Llama 2) config has no rope_theta.
    private const double DefaultTheta = 10_000.0;

    // Real models use 1e4 to a few 1e9; far beyond, every frequency but the first underflows to zero.
    internal const double MaxTheta = 1e12;

    // The llama3 factors are small ratios (8, 32; 1; 4); a million is not a ratio any model uses.
    internal const double MaxFactor = 1e6;

    public static RopeSettings Read(ConfigObject root)
    {
        RejectPartialRotary(root);
        double? rootTheta = CheckTheta(root, root.GetOptionalDouble("rope_theta"));
        ConfigObject? scaling = root.GetOptionalObject("rope_scaling");

        if (root.GetOptionalObject("rope_parameters") is { } parameters)
        {
            RejectPartialRotary(parameters);
            double? theta = CheckTheta(parameters, parameters.GetOptionalDouble("rope_theta"));
            if (theta is not null && rootTheta is not null && theta != rootTheta)
            {
                throw parameters.Invalid("rope_theta", $"is {ConfigObject.Format(theta.Value)} but the top-level 'rope_theta' is {ConfigObject.Format(rootTheta.Value)}");
            }

            RopeType type = ReadType(parameters, typeRequired: false);
            if (scaling is { } legacy && ReadType(legacy, typeRequired: true) != type)
            {
                throw root.Invalid("rope_scaling", $"asks for a different RoPE type than 'rope_parameters' ({type})");
            }

            return Build(parameters, theta ?? rootTheta ?? DefaultTheta, type);
        }

        return scaling is { } classic
            ? Build(classic, rootTheta ?? DefaultTheta, ReadType(classic, typeRequired: true))
            : Build(root, rootTheta ?? DefaultTheta, RopeType.Default);
    }

    private static RopeType ReadType(ConfigObject source, bool typeRequired)
    {
        // "type" is the key older transformers versions wrote before "rope_type".
        string key = source.Has("rope_type") || !source.Has("type") ? "rope_type" : "type";
        string text = typeRequired || source.Has(key) ? source.GetString(key) : "default";
        return text switch
        {
            "default" => RopeType.Default,
            "llama3" => RopeType.Llama3,
            _ => throw source.Invalid(key, $"is '{text}', a RoPE scaling this library does not implement (supported: default, llama3)"),
        };
    }

    // Checked where it was read, so the message names the key that holds it.
    private static double? CheckTheta(ConfigObject source, double? theta)
    {
        if (theta is { } value && !(value > 0 && value <= MaxTheta))
        {
            throw source.Invalid("rope_theta", $"is {ConfigObject.Format(value)}, expected a positive number of at most {ConfigObject.Format(MaxTheta)}");
        }

        return theta;
    }

    private static RopeSettings Build(ConfigObject source, double theta, RopeType type)
    {

        if (type == RopeType.Default)
        {
            return new RopeSettings { Theta = theta, Type = type };
        }

        double factor = source.GetDouble("factor");
        double low = source.GetDouble("low_freq_factor");
        double high = source.GetDouble("high_freq_factor");
        int originalMax = source.GetInt32("original_max_position_embeddings");
        CheckFactor(source, "factor", factor);
        CheckFactor(source, "low_freq_factor", low);

        // The llama3 blend divides by (high - low).
        if (!(high > low))
        {
            throw source.Invalid("high_freq_factor", $"is {ConfigObject.Format(high)}, expected more than low_freq_factor ({ConfigObject.Format(low)})");
        }

        CheckFactor(source, "high_freq_factor", high);

        if (originalMax <= 0)
        {
            throw source.Invalid("original_max_position_embeddings", $"is {originalMax}, expected a positive integer");
        }

        return new RopeSettings
        {
            Theta = theta,
            Type = type,
            Factor = factor,
            LowFreqFactor = low,
            HighFreqFactor = high,
            OriginalMaxPositionEmbeddings = originalMax,
        };
    }

    private static void CheckFactor(ConfigObject source, string key, double value)
    {
        if (!(value > 0 && value <= MaxFactor))
        {
            throw source.Invalid(key, $"is {ConfigObject.Format(value)}, expected a positive number of at most {ConfigObject.Format(MaxFactor)}");
        }
    }

    // A partial rotary embedding (rotating only part of each head) is not a Llama feature; refuse it
    // rather than rotate the whole head.
    private static void RejectPartialRotary(ConfigObject source)
    {
        if (source.GetOptionalDouble("partial_rotary_factor") is { } fraction && fraction != 1.0)
        {
            throw source.Invalid("partial_rotary_factor", $"is {ConfigObject.Format(fraction)}; only full rotary embeddings (1.0) are supported");
        }
    }
}
