using BlockAttention.Attention.Cuda;

namespace BlockAttention.Tests.Attention;

/// <summary>The decode kernel's work plan (no GPU needed): every key in one tile, chunks per sequence, a sequence cut the same alone and in a batch.</summary>
public class DecodeTilingTests
{
    [Theory]
    [InlineData(1, 8, 132)]
    [InlineData(3, 8, 132)]
    [InlineData(16, 1, 16)]
    [InlineData(64, 8, 132)]
    public void Every_key_of_every_sequence_is_in_exactly_one_tile_of_its_own_chunks(int sequences, int kvHeads, int multiprocessors)
    {
        var random = new Random(sequences * 17 + kvHeads);
        var lengths = Enumerable.Range(0, sequences).Select(_ => (IReadOnlyList<int>)RandomLengths(random)).ToList();

        var table = DecodeTiling.Plan(lengths, kvHeads, multiprocessors);

        var segmentOf = new List<(int Sequence, int Index)>();
        for (int q = 0; q < sequences; q++)
        {
            segmentOf.AddRange(lengths[q].Select((_, s) => (q, s)));
        }

        var seen = lengths.SelectMany(list => list.Select(length => new int[length])).ToArray();
        foreach (var (segment, start, count) in table.Tiles)
        {
            count.Should().BeInRange(1, DecodeTiling.Tile);
            for (int key = start; key < start + count; key++)
            {
                seen[segment][key]++;
            }
        }

        seen.SelectMany(keys => keys).Should().OnlyContain(times => times == 1);
        table.SequenceChunks.Should().HaveCount(sequences);
        int expectedFirst = 0;
        for (int q = 0; q < sequences; q++)
        {
            var (first, end) = table.SequenceChunks[q];
            first.Should().Be(expectedFirst, "the sequences' chunks follow each other");
            end.Should().BeGreaterThan(first, "every sequence has a chunk");
            expectedFirst = end;
            for (int c = first; c < end; c++)
            {
                var chunk = table.Chunks[c];
                chunk.Sequence.Should().Be(q);
                chunk.End.Should().BeGreaterThan(chunk.First, "no chunk is empty");
                if (c + 1 < end)
                {
                    table.Chunks[c + 1].First.Should().Be(chunk.End, "a sequence's chunks partition its tiles");
                }

                for (int t = chunk.First; t < chunk.End; t++)
                {
                    segmentOf[table.Tiles[t].Segment].Sequence.Should().Be(q, "a chunk reads only its own sequence's segments");
                }
            }
        }

        expectedFirst.Should().Be(table.Chunks.Count);
        table.Chunks[^1].End.Should().Be(table.Tiles.Count);
        table.MaxChunksPerSequence.Should().BeLessThanOrEqualTo(DecodeTiling.MaxChunksPerSequence);
    }

    [Fact]
    public void A_sequence_is_cut_the_same_alone_and_among_others()
    {
        var random = new Random(5);
        var lengths = Enumerable.Range(0, 9).Select(_ => (IReadOnlyList<int>)RandomLengths(random)).ToList();
        var batch = DecodeTiling.Plan(lengths, 8, 132);
        int segmentBase = 0;
        for (int q = 0; q < lengths.Count; q++)
        {
            var alone = DecodeTiling.Plan([lengths[q]], 8, 132);
            var (first, end) = batch.SequenceChunks[q];
            int tileBase = batch.Chunks[first].First;
            var chunks = batch.Chunks.Skip(first).Take(end - first).Select(c => (c.First - tileBase, c.End - tileBase)).ToList();
            chunks.Should().Equal(alone.Chunks.Select(c => (c.First, c.End)));
            var tiles = batch.Tiles.Skip(tileBase).Take(alone.Tiles.Count).Select(t => (t.Segment - segmentBase, t.Start, t.Count)).ToList();
            tiles.Should().Equal(alone.Tiles);
            segmentBase += lengths[q].Count;
        }
    }

    [Fact]
    public void Chunks_are_sized_for_the_device_and_hold_a_tile_per_warp()
    {
        // 32K keys in one segment, 8 KV heads, 132 multiprocessors: 2048 tiles of 16 keys, 132 chunks wanted.
        var table = DecodeTiling.Plan([[32768]], 8, 132);
        table.Tiles.Should().HaveCount(2048);
        table.Chunks.Should().HaveCount(128, "16 tiles per chunk (2048 / 132 rounded up) make 128 chunks");

        // A short context: at least four tiles (one per warp) per chunk.
        var small = DecodeTiling.Plan([[100]], 8, 132);
        small.Tiles.Should().HaveCount(7);
        small.Chunks.Should().ContainSingle();
    }

    [Fact]
    public void A_sequence_without_keys_is_refused()
    {
        var act = () => DecodeTiling.Plan([[10], [0, 0]], 8, 132);
        act.Should().Throw<ArgumentException>().WithMessage("*sequence 1*");
    }

    [Theory]
    [InlineData(32, 8)]
    [InlineData(64, 8)]
    [InlineData(16, 16)]
    public void Other_tile_sizes_cover_every_key_once_and_cut_a_sequence_the_same_alone(int tile, int blocks)
    {
        var random = new Random(tile * 31 + blocks);
        var lengths = Enumerable.Range(0, 12).Select(_ => (IReadOnlyList<int>)RandomLengths(random)).ToList();

        var batch = DecodeTiling.Plan(lengths, 8, 132, tile, blocks);

        var seen = lengths.SelectMany(list => list.Select(length => new int[length])).ToArray();
        foreach (var (segment, start, count) in batch.Tiles)
        {
            count.Should().BeInRange(1, tile);
            for (int key = start; key < start + count; key++)
            {
                seen[segment][key]++;
            }
        }

        seen.SelectMany(keys => keys).Should().OnlyContain(times => times == 1);
        int tileBase = 0;
        for (int q = 0; q < lengths.Count; q++)
        {
            var alone = DecodeTiling.Plan([lengths[q]], 8, 132, tile, blocks);
            var (first, end) = batch.SequenceChunks[q];
            batch.Chunks.Skip(first).Take(end - first).Select(c => (c.First - tileBase, c.End - tileBase))
                .Should().Equal(alone.Chunks.Select(c => (c.First, c.End)));
            tileBase += alone.Tiles.Count;
        }
    }

    private static List<int> RandomLengths(Random random)
    {
        var lengths = Enumerable.Range(0, random.Next(1, 40)).Select(_ => random.Next(4) == 0 ? random.Next(0, 8) : random.Next(0, 700)).ToList();
        lengths[^1] = Math.Max(1, lengths[^1]);
        return lengths;
    }
}
