namespace BlockAttention.Attention.Cuda;

/// <summary>
/// How a decode step of many sequences is cut when they share cached blocks (the tensor-core
/// kernel <c>segment_attention_shared_mma</c>): each distinct segment is read once for every
/// sequence that attends to it. A segment is cut into tiles of <see cref="SegmentTiling.Tile"/>
/// keys and the tiles into chunks of a fixed count that depends on nothing but the segment's
/// length; a work item is one chunk and up to <c>membersPerItem</c> of the segment's sequences.
/// Each sequence gets one partial result per (segment, chunk) it attends to, in the order of its
/// own segments, so its arithmetic (and its result, to the bit) is the same alone or in any batch.
/// </summary>
internal static class SharedTiling
{
    /// <summary>
    /// Tiles per chunk (512 keys): a ~300-token passage is one chunk, so its queries are rotated
    /// once per work item; a long sequence alone still spreads over the GPU (32K keys: 64 chunks
    /// per KV head). Settable for tuning with <c>BLOCKATTENTION_CUDA_SHARED_TILES</c>.
    /// </summary>
    public const int TilesPerChunk = 8;

    /// <summary>
    /// Plans a step. <paramref name="segmentOf"/>[s] lists, in prompt order, the distinct-segment
    /// index of each of sequence s's segments; <paramref name="lengths"/> holds each distinct
    /// segment's length in keys. Members are described with <paramref name="positions"/>[s], the
    /// position of sequence s's query (row s of the step's queries).
    /// </summary>
    public static SharedTable Plan(IReadOnlyList<IReadOnlyList<int>> segmentOf, IReadOnlyList<int> lengths, IReadOnlyList<int> positions, int membersPerItem, int tilesPerChunk = TilesPerChunk)
    {
        ArgumentNullException.ThrowIfNull(segmentOf);
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentNullException.ThrowIfNull(positions);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(membersPerItem);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(tilesPerChunk);
        if (segmentOf.Count == 0 || segmentOf.Count != positions.Count)
        {
            throw new ArgumentException($"{segmentOf.Count} sequences and {positions.Count} query positions: one of each per sequence, at least one");
        }

        // Each distinct segment's tiles, and its chunk count.
        var tiles = new List<(int Segment, int Start, int Count)>();
        var firstTile = new int[lengths.Count];
        var chunkCount = new int[lengths.Count];
        for (int d = 0; d < lengths.Count; d++)
        {
            if (lengths[d] < 0)
            {
                throw new ArgumentException($"segment {d}: negative length {lengths[d]}", nameof(lengths));
            }

            firstTile[d] = tiles.Count;
            for (int start = 0; start < lengths[d]; start += SegmentTiling.Tile)
            {
                tiles.Add((d, start, Math.Min(SegmentTiling.Tile, lengths[d] - start)));
            }

            chunkCount[d] = (tiles.Count - firstTile[d] + tilesPerChunk - 1) / tilesPerChunk;
        }

        // Each sequence's partial slots, and each segment's members in sequence order.
        var members = new List<(int Row, int Position, int FirstSlot)>[lengths.Count];
        var sequenceSlots = new (int First, int End)[segmentOf.Count];
        int slots = 0;
        for (int s = 0; s < segmentOf.Count; s++)
        {
            ArgumentNullException.ThrowIfNull(segmentOf[s]);
            if (positions[s] < 0)
            {
                throw new ArgumentException($"sequence {s}: negative query position {positions[s]}", nameof(positions));
            }

            int first = slots;
            foreach (int d in segmentOf[s])
            {
                if ((uint)d >= (uint)lengths.Count)
                {
                    throw new ArgumentException($"sequence {s}: segment {d} is not one of the {lengths.Count} segments", nameof(segmentOf));
                }

                (members[d] ??= []).Add((s, positions[s], slots));
                slots = checked(slots + chunkCount[d]);
            }

            if (slots == first)
            {
                throw new ArgumentException($"sequence {s} has no keys to attend to", nameof(segmentOf));
            }

            sequenceSlots[s] = (first, slots);
        }

        // Work items: per segment, per group of members, per chunk.
        var work = new List<(int FirstTile, int EndTile, int FirstMember, int Members, int Chunk)>();
        var memberTable = new List<(int Row, int Position, int FirstSlot)>();
        for (int d = 0; d < lengths.Count; d++)
        {
            if (members[d] is not { } list || chunkCount[d] == 0)
            {
                continue;
            }

            int segmentTiles = firstTile[d] + (lengths[d] + SegmentTiling.Tile - 1) / SegmentTiling.Tile;
            for (int m = 0; m < list.Count; m += membersPerItem)
            {
                int firstMember = memberTable.Count;
                int count = Math.Min(membersPerItem, list.Count - m);
                memberTable.AddRange(list.GetRange(m, count));
                for (int c = 0; c < chunkCount[d]; c++)
                {
                    int begin = firstTile[d] + c * tilesPerChunk;
                    work.Add((begin, Math.Min(segmentTiles, begin + tilesPerChunk), firstMember, count, c));
                }
            }
        }

        return new SharedTable(tiles, work, memberTable, sequenceSlots, slots);
    }
}

/// <summary>The shared decode kernel's work tables: see <see cref="SharedTiling.Plan"/>.</summary>
internal sealed record SharedTable(
    IReadOnlyList<(int Segment, int Start, int Count)> Tiles,
    IReadOnlyList<(int FirstTile, int EndTile, int FirstMember, int Members, int Chunk)> Work,
    IReadOnlyList<(int Row, int Position, int FirstSlot)> Members,
    IReadOnlyList<(int First, int End)> SequenceSlots,
    int Slots)
{
    /// <summary>The most partial slots of any one sequence.</summary>
    public int MaxSlotsPerSequence => SequenceSlots.Max(s => s.End - s.First);
}
