using BlockAttention.Attention.Cuda;

namespace BlockAttention.Tests.Attention;

/// <summary>
/// The shared decode kernel's work plan (no GPU needed): every (sequence, segment it lists) gets
/// each of that segment's keys exactly once, in partial slots of its own; a segment is read once
/// per group of its sequences; a sequence's slots read the same keys alone and in any batch.
/// </summary>
public class SharedTilingTests
{
    [Theory]
    [InlineData(1, 1, 16)]
    [InlineData(7, 4, 16)]
    [InlineData(64, 14, 16)]
    [InlineData(64, 14, 64)]
    [InlineData(20, 3, 1)]
    public void Every_sequence_sees_each_key_of_each_of_its_segments_once_in_its_own_slots(int sequences, int pool, int membersPerItem)
    {
        var random = new Random(sequences * 31 + pool);
        var (segmentOf, lengths, positions) = RandomBatch(random, sequences, pool);

        var table = SharedTiling.Plan(segmentOf, lengths, positions, membersPerItem);

        // Which keys each (sequence, slot) reads, from the work items alone.
        var slotKeys = new Dictionary<(int Sequence, int Slot), List<(int Segment, int Key)>>();
        var reads = new int[lengths.Count];
        foreach (var item in table.Work)
        {
            item.Members.Should().BeInRange(1, membersPerItem);
            item.EndTile.Should().BeGreaterThan(item.FirstTile);
            int segment = table.Tiles[item.FirstTile].Segment;
            reads[segment] += item.EndTile - item.FirstTile;
            for (int m = item.FirstMember; m < item.FirstMember + item.Members; m++)
            {
                var member = table.Members[m];
                member.Position.Should().Be(positions[member.Row]);
                var keys = new List<(int, int)>();
                for (int t = item.FirstTile; t < item.EndTile; t++)
                {
                    var tile = table.Tiles[t];
                    tile.Segment.Should().Be(segment, "a work item reads one segment");
                    keys.AddRange(Enumerable.Range(tile.Start, tile.Count).Select(key => (tile.Segment, key)));
                }

                slotKeys.TryAdd((member.Row, member.FirstSlot + item.Chunk), keys).Should().BeTrue("each slot is written once");
            }
        }

        int expectedFirst = 0;
        for (int s = 0; s < sequences; s++)
        {
            var (first, end) = table.SequenceSlots[s];
            first.Should().Be(expectedFirst, "the sequences' slots follow each other");
            expectedFirst = end;
            var seen = Enumerable.Range(first, end - first).SelectMany(slot => slotKeys[(s, slot)]).ToList();
            var expected = segmentOf[s].SelectMany(d => Enumerable.Range(0, lengths[d]).Select(key => (d, key))).ToList();
            seen.Should().Equal(expected, "the slots hold the sequence's keys once each, in its segments' order");
        }

        expectedFirst.Should().Be(table.Slots);
        slotKeys.Should().HaveCount(table.Slots);
        for (int d = 0; d < lengths.Count; d++)
        {
            int listed = segmentOf.Sum(list => list.Count(x => x == d));
            int groups = (listed + membersPerItem - 1) / membersPerItem;
            reads[d].Should().Be(groups * ((lengths[d] + SegmentTiling.Tile - 1) / SegmentTiling.Tile), "a segment is read once per group of the sequences that list it");
        }
    }

    [Fact]
    public void A_sequence_reads_the_same_keys_per_slot_alone_and_among_others()
    {
        var random = new Random(11);
        var (segmentOf, lengths, positions) = RandomBatch(random, 24, 9);
        var batch = Slots(SharedTiling.Plan(segmentOf, lengths, positions, 16), lengths);
        for (int s = 0; s < segmentOf.Count; s++)
        {
            var alone = Slots(SharedTiling.Plan([segmentOf[s]], lengths, [positions[s]], 16), lengths);
            batch[s].Should().BeEquivalentTo(alone[0], options => options.WithStrictOrdering(), $"sequence {s}'s chunks do not depend on the other sequences");
        }
    }

    [Fact]
    public void Long_segments_are_cut_into_fixed_chunks_and_short_ones_into_one()
    {
        var table = SharedTiling.Plan([[0, 1]], [32768, 300], [33100], 16);
        table.SequenceSlots[0].Should().Be((0, (32768 / (SegmentTiling.Tile * SharedTiling.TilesPerChunk)) + 1));
        table.Work.Should().OnlyContain(item => item.EndTile - item.FirstTile <= SharedTiling.TilesPerChunk);
    }

    [Fact]
    public void Bad_tables_are_refused_with_the_sequence_named()
    {
        var outOfRange = () => SharedTiling.Plan([[0, 3]], [10, 10], [20], 16);
        outOfRange.Should().Throw<ArgumentException>().WithMessage("*sequence 0: segment 3*");
        var negative = () => SharedTiling.Plan([[0]], [10], [-1], 16);
        negative.Should().Throw<ArgumentException>().WithMessage("*sequence 0: negative query position*");
        var empty = () => SharedTiling.Plan([[0], [1]], [10, 0], [10, 10], 16);
        empty.Should().Throw<ArgumentException>().WithMessage("*sequence 1 has no keys*");
        var mismatch = () => SharedTiling.Plan([[0]], [10], [10, 11], 16);
        mismatch.Should().Throw<ArgumentException>();
    }

    /// <summary>Per sequence, the keys each of its slots reads, in slot order.</summary>
    private static List<List<List<(int Segment, int Key)>>> Slots(SharedTable table, IReadOnlyList<int> lengths)
    {
        var result = table.SequenceSlots.Select(range => Enumerable.Range(0, range.End - range.First).Select(_ => new List<(int, int)>()).ToList()).ToList();
        foreach (var item in table.Work)
        {
            for (int m = item.FirstMember; m < item.FirstMember + item.Members; m++)
            {
                var member = table.Members[m];
                var keys = result[member.Row][member.FirstSlot + item.Chunk - table.SequenceSlots[member.Row].First];
                for (int t = item.FirstTile; t < item.EndTile; t++)
                {
                    var tile = table.Tiles[t];
                    keys.AddRange(Enumerable.Range(tile.Start, tile.Count).Select(key => (tile.Segment, key)));
                }
            }
        }

        return result;
    }

    /// <summary>A pool of segments (some shared by many sequences, some of one key, some empty) and each sequence's own tail.</summary>
    private static (List<IReadOnlyList<int>> SegmentOf, List<int> Lengths, List<int> Positions) RandomBatch(Random random, int sequences, int pool)
    {
        var lengths = Enumerable.Range(0, pool).Select(_ => random.Next(4) switch { 0 => 0, 1 => 1 + random.Next(5), _ => 1 + random.Next(1500) }).ToList();
        var segmentOf = new List<IReadOnlyList<int>>();
        var positions = new List<int>();
        for (int s = 0; s < sequences; s++)
        {
            var list = Enumerable.Range(0, pool).Where(_ => random.Next(3) > 0).OrderBy(_ => random.Next()).ToList();
            lengths.Add(1 + random.Next(300)); // the sequence's own tail
            list.Add(lengths.Count - 1);
            segmentOf.Add(list);
            positions.Add(list.Sum(d => lengths[d]) - 1);
        }

        return (segmentOf, lengths, positions);
    }
}
