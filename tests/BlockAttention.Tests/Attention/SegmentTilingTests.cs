using BlockAttention.Attention.Cuda;

namespace BlockAttention.Tests.Attention;

/// <summary>The split kernel's work plan: every key in exactly one tile, tiles in whole chunks (no GPU needed).</summary>
public class SegmentTilingTests
{
    [Theory]
    [InlineData(1, 8, 4, 132)]
    [InlineData(7, 8, 1, 132)]
    [InlineData(109, 8, 4, 132)]
    [InlineData(200, 1, 1, 16)]
    [InlineData(3, 64, 100, 132)]
    public void Every_key_is_in_exactly_one_tile_and_the_chunks_partition_the_tiles(int segments, int kvHeads, int rowTiles, int multiprocessors)
    {
        var random = new Random(segments * 31 + kvHeads);
        var lengths = Enumerable.Range(0, segments).Select(_ => random.Next(4) == 0 ? random.Next(1, 8) : random.Next(0, 700)).ToList();
        lengths[^1] = Math.Max(1, lengths[^1]); // the tail always has the new tokens

        var (tiles, starts) = SegmentTiling.Plan(lengths, kvHeads, rowTiles, multiprocessors);

        var seen = lengths.Select(length => new int[length]).ToArray();
        foreach (var (segment, start, count) in tiles)
        {
            count.Should().BeInRange(1, SegmentTiling.Tile);
            for (int key = start; key < start + count; key++)
            {
                seen[segment][key]++;
            }
        }

        seen.SelectMany(keys => keys).Should().OnlyContain(times => times == 1);
        tiles.Select(t => (t.Segment, t.Start)).Should().BeInAscendingOrder(Comparer<(int, int)>.Default);
        starts[0].Should().Be(0);
        starts[^1].Should().Be(tiles.Count);
        for (int c = 0; c + 1 < starts.Length; c++)
        {
            starts[c + 1].Should().BeGreaterThan(starts[c], "no chunk is empty");
        }

        long blocks = (long)(starts.Length - 1) * kvHeads * rowTiles;
        blocks.Should().BeLessThanOrEqualTo(Math.Max(4L * multiprocessors, (long)kvHeads * rowTiles), "about two waves of two blocks per multiprocessor, rounded down");
    }

    [Fact]
    public void No_keys_is_refused()
    {
        var plan = () => SegmentTiling.Plan([0, 0], 8, 1, 132);

        plan.Should().Throw<ArgumentException>().WithMessage("*no keys*");
    }
}
