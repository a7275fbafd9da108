namespace BlockAttention.Attention.Cuda;

/// <summary>
/// How the split kernel's work is cut: each segment into tiles of at most <see cref="Tile"/> keys
/// (a tile never spans two segments), and the tiles, in order, into chunks, one thread block per
/// chunk, KV head and row tile.
/// </summary>
internal static class SegmentTiling
{
    /// <summary>Keys per tile (the kernels' TILE).</summary>
    public const int Tile = 64;

    /// <summary>
    /// The tiles of segments of <paramref name="lengths"/> keys, and the first tile of each chunk
    /// followed by the tile count. Chunks are sized for about two waves of thread blocks at two
    /// resident per multiprocessor, rounded down so that a last, nearly empty wave is avoided.
    /// </summary>
    public static (List<(int Segment, int Start, int Count)> Tiles, int[] ChunkStarts) Plan(IReadOnlyList<int> lengths, int kvHeads, int rowTiles, int multiprocessors)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rowTiles);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(multiprocessors);
        var tiles = new List<(int Segment, int Start, int Count)>();
        for (int s = 0; s < lengths.Count; s++)
        {
            for (int start = 0; start < lengths[s]; start += Tile)
            {
                tiles.Add((s, start, Math.Min(Tile, lengths[s] - start)));
            }
        }

        if (tiles.Count == 0)
        {
            throw new ArgumentException("there are no keys to attend to", nameof(lengths));
        }

        long target = 4L * multiprocessors;
        int chunks = (int)Math.Clamp(target / (kvHeads * (long)rowTiles), 1, tiles.Count);
        int tilesPerChunk = (tiles.Count + chunks - 1) / chunks;
        chunks = (tiles.Count + tilesPerChunk - 1) / tilesPerChunk;
        var starts = new int[chunks + 1];
        for (int c = 0; c <= chunks; c++)
        {
            starts[c] = Math.Min(c * tilesPerChunk, tiles.Count);
        }

        return (tiles, starts);
    }
}
