namespace BlockAttention.Attention.Cuda;

/// <summary>
/// How the decode kernel's work is cut (see DecodeAttention.cu): each sequence's segments into
/// tiles of at most <see cref="Tile"/> keys (a tile never spans two segments), each sequence's
/// tiles into chunks (a chunk never spans two sequences), one thread block of four warps per
/// chunk and KV head, the warps taking the chunk's tiles in turn.
/// </summary>
internal static class DecodeTiling
{
    /// <summary>Keys per tile: one warp's unit of work.</summary>
    public const int Tile = 16;

    /// <summary>Warps per thread block (the kernel's DWARPS).</summary>
    public const int Warps = 4;

    /// <summary>Most chunks one sequence is cut into (the combine kernel keeps one weight per chunk in shared memory).</summary>
    public const int MaxChunksPerSequence = 4096;

    /// <summary>
    /// Tiles (global segment index, start, count), chunks (first tile, end tile, sequence) and,
    /// per sequence, its chunks (first, end). <paramref name="lengths"/> holds each sequence's
    /// segment lengths; segment indices count across sequences in order. Each sequence is cut as
    /// if it ran alone (about eight thread blocks per multiprocessor, at least <see cref="Warps"/>
    /// tiles per chunk where it has them), so a sequence's arithmetic, and so its result to the
    /// bit, does not depend on which other sequences share the call.
    /// </summary>
    public static DecodeTable Plan(IReadOnlyList<IReadOnlyList<int>> lengths, int kvHeads, int multiprocessors, int tile = Tile, int blocksPerMultiprocessor = 8)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tile);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blocksPerMultiprocessor);
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(kvHeads);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(multiprocessors);
        if (lengths.Count == 0)
        {
            throw new ArgumentException("there are no sequences", nameof(lengths));
        }

        var tiles = new List<(int Segment, int Start, int Count)>();
        var sequenceTiles = new (int First, int End)[lengths.Count];
        int segmentBase = 0;
        for (int q = 0; q < lengths.Count; q++)
        {
            int first = tiles.Count;
            for (int s = 0; s < lengths[q].Count; s++)
            {
                int length = lengths[q][s];
                if (length < 0)
                {
                    throw new ArgumentException($"sequence {q}, segment {s}: negative length {length}", nameof(lengths));
                }

                for (int start = 0; start < length; start += tile)
                {
                    tiles.Add((segmentBase + s, start, Math.Min(tile, length - start)));
                }
            }

            if (tiles.Count == first)
            {
                throw new ArgumentException($"sequence {q} has no keys to attend to", nameof(lengths));
            }

            segmentBase += lengths[q].Count;
            sequenceTiles[q] = (first, tiles.Count);
        }

        long targetChunks = Math.Max(1, (long)blocksPerMultiprocessor * multiprocessors / kvHeads);
        var chunks = new List<(int First, int End, int Sequence)>();
        var sequenceChunks = new (int First, int End)[lengths.Count];
        for (int q = 0; q < lengths.Count; q++)
        {
            var (first, end) = sequenceTiles[q];
            int count = end - first;
            long wanted = targetChunks;
            int most = Math.Min(MaxChunksPerSequence, Math.Max(1, count / Warps));
            int perSequence = (int)Math.Clamp(wanted, 1, most);
            int tilesPerChunk = (count + perSequence - 1) / perSequence;
            int firstChunk = chunks.Count;
            for (int t = first; t < end; t += tilesPerChunk)
            {
                chunks.Add((t, Math.Min(end, t + tilesPerChunk), q));
            }

            sequenceChunks[q] = (firstChunk, chunks.Count);
        }

        return new DecodeTable(tiles, chunks, sequenceChunks);
    }
}

/// <summary>The decode kernel's work tables: see <see cref="DecodeTiling.Plan"/>.</summary>
internal sealed record DecodeTable(
    IReadOnlyList<(int Segment, int Start, int Count)> Tiles,
    IReadOnlyList<(int First, int End, int Sequence)> Chunks,
    IReadOnlyList<(int First, int End)> SequenceChunks)
{
    /// <summary>The most chunks of any one sequence.</summary>
    public int MaxChunksPerSequence => SequenceChunks.Max(c => c.End - c.First);
}
