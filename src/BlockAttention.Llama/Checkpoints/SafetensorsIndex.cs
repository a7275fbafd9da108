using System.Text.Json;
using BlockAttention.IO;

namespace BlockAttention.Llama.Checkpoints;

/// <summary>
/// The <c>weight_map</c> of a sharded checkpoint's <c>model.safetensors.index.json</c>: which shard
/// file holds each tensor.
/// </summary>
internal static class SafetensorsIndex
{
    private static readonly System.Buffers.SearchValues<char> InvalidPathChars = System.Buffers.SearchValues.Create(Path.GetInvalidPathChars());

    /// <summary>Reads the index at <paramref name="indexPath"/>.</summary>
    /// <returns>(tensor name, full path of its shard) pairs in index order; every shard lies inside the index's folder.</returns>
    public static List<(string Tensor, string ShardPath)> ReadWeightMap(string indexPath, CheckpointFileLimits limits)
    {
        string directory = Path.GetDirectoryName(indexPath)!;
        byte[] bytes = InputFile.ReadAllBytes(indexPath, limits.ShardIndexBytes, "shard index", CheckpointFileLimits.Hint(nameof(CheckpointFileLimits.ShardIndexBytes)));
        JsonDocument document;
        try
        {
            document = StrictJson.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException($"Shard index '{indexPath}' is not valid JSON: {e.Message}", indexPath, null, e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object
                || !document.RootElement.TryGetProperty("weight_map", out JsonElement weightMap)
                || weightMap.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointFormatException(
                    $"Shard index '{indexPath}' has no 'weight_map' object mapping tensor names to shard files.", indexPath, "weight_map");
            }

            var entries = new List<(string Tensor, string ShardPath)>();
            foreach (JsonProperty entry in weightMap.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(entry.Value.GetString()))
                {
                    throw new CheckpointFormatException(
                        $"Shard index '{indexPath}': 'weight_map' entry for tensor '{entry.Name}' is {entry.Value.GetRawText()}, expected a shard file name.",
                        indexPath, entry.Name);
                }

                entries.Add((entry.Name, ResolveShard(directory, entry.Value.GetString()!, entry.Name, indexPath)));
            }

            if (entries.Count == 0)
            {
                throw new CheckpointFormatException($"Shard index '{indexPath}' has an empty 'weight_map'.", indexPath, "weight_map");
            }

            return entries;
        }
    }

    // The index is data from the internet: a shard name must not reach outside the checkpoint folder.
    private static string ResolveShard(string directory, string shard, string tensor, string indexPath)
    {
        // A NUL or another character no path may hold would make Path throw an ArgumentException that names neither file.
        if (shard.AsSpan().IndexOfAny(InvalidPathChars) >= 0)
        {
            throw new CheckpointFormatException(
                $"Shard index '{indexPath}' maps tensor '{tensor}' to {System.Text.Json.JsonSerializer.Serialize(shard)}, which is not a valid file name.", indexPath, tensor);
        }

        string full = Path.GetFullPath(Path.Combine(directory, shard));
        string root = Path.TrimEndingDirectorySeparator(directory) + Path.DirectorySeparatorChar;
        if (!full.StartsWith(root, StringComparison.Ordinal))
        {
            throw new CheckpointFormatException(
                $"Shard index '{indexPath}' maps tensor '{tensor}' to '{shard}', which is outside the checkpoint folder.", indexPath, tensor);
        }

        return full;
    }
}
