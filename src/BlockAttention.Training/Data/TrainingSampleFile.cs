using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace BlockAttention.Training.Data;

/// <summary>
/// The prepared set on disk: JSON Lines, one sample per line as
/// <c>{"input_ids": [...], "labels": [...], "local_block_lengths": [...], "block_attention": bool}</c>.
/// </summary>
public static class TrainingSampleFile
{
    private sealed record Line(
        [property: JsonPropertyName("input_ids")] int[]? InputIds,
        [property: JsonPropertyName("labels")] int[]? Labels,
        [property: JsonPropertyName("local_block_lengths")] int[]? LocalBlockLengths,
        [property: JsonPropertyName("block_attention")] bool? BlockAttention);

    /// <summary>Writes <paramref name="samples"/> to <paramref name="path"/>.</summary>
    public static void Write(string path, IEnumerable<TrainingSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        using var writer = new StreamWriter(path, append: false, new UTF8Encoding(false));
        foreach (var s in samples)
        {
            writer.WriteLine(JsonSerializer.Serialize(new Line(s.InputIds, s.Labels, s.LocalBlockLengths, s.BlockAttention)));
        }
    }

    /// <summary>Reads a prepared set, checking each sample's consistency.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="TrainingDataException">A line is malformed or inconsistent.</exception>
    public static List<TrainingSample> Read(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"prepared training data not found: {path}", path);
        }

        var samples = new List<TrainingSample>();
        long number = 0;
        foreach (string text in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            Line? line;
            try
            {
                line = JsonSerializer.Deserialize<Line>(text);
            }
            catch (JsonException e)
            {
                throw new TrainingDataException(path, number, $"not a prepared sample ({e.Message})", e);
            }

            if (line?.InputIds is not { Length: > 1 } ids || line.Labels is not { } labels || line.LocalBlockLengths is not { } local || line.BlockAttention is not { } block)
            {
                throw new TrainingDataException(path, number, "a prepared sample needs input_ids (2 or more), labels, local_block_lengths and block_attention");
            }

            if (labels.Length != ids.Length)
            {
                throw new TrainingDataException(path, number, $"labels has {labels.Length} entries for {ids.Length} input_ids");
            }

            if (local.Any(n => n < 0) || local.Sum(n => (long)n) >= ids.Length)
            {
                throw new TrainingDataException(path, number, "local_block_lengths must not be negative and leave at least one token for the final block");
            }

            if (ids.Any(id => id < 0))
            {
                throw new TrainingDataException(path, number, "input_ids must not be negative");
            }

            samples.Add(new TrainingSample(ids, labels, local, block));
        }

        return samples;
    }
}
