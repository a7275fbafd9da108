using BlockAttention.Llama.Tokenization;

namespace BlockAttention.Tests.Tokenization;

/// <summary>
/// The run queue of long pieces gives entries in the order of a sorted list of all entries pushed and not yet
/// popped: lowest rank, then lowest position. Ranks collide in its table of open runs (rank modulo 256) and
/// positions arrive out of order, so every path is taken.
/// </summary>
public class MergeQueueTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RandomPushesAndPops_ComeOutInRankThenPositionOrder(int seed)
    {
        var random = new Random(seed);
        IMergeQueue[] queues = [new MergeRuns(), new MergeHeap()];
        foreach (IMergeQueue queue in queues)
        {
            queue.Clear();
        }

        var expected = new SortedList<(int Rank, int Position, int Serial), int>();
        int serial = 0;
        for (int position = 0; position < 2000; position += random.Next(3))
        {
            int rank = RandomRank(random);
            foreach (IMergeQueue queue in queues)
            {
                queue.AddInOrder(rank, position);
            }

            expected.Add((rank, position, serial++), 0);
        }

        foreach (IMergeQueue queue in queues)
        {
            queue.Build();
        }

        for (int step = 0; step < 20_000; step++)
        {
            if (expected.Count > 0 && random.Next(3) > 0)
            {
                (int rank, int position, _) = expected.Keys[0];
                expected.RemoveAt(0);
                foreach (IMergeQueue queue in queues)
                {
                    queue.TryPop(out int poppedRank, out int poppedPosition).Should().BeTrue();
                    (poppedRank, poppedPosition).Should().Be((rank, position), $"step {step}, {queue.GetType().Name}");
                }
            }
            else
            {
                int rank = RandomRank(random);
                int position = random.Next(2000);
                foreach (IMergeQueue queue in queues)
                {
                    queue.Push(rank, position);
                }

                expected.Add((rank, position, serial++), 0);
            }
        }

        while (expected.Count > 0)
        {
            (int rank, int position, _) = expected.Keys[0];
            expected.RemoveAt(0);
            foreach (IMergeQueue queue in queues)
            {
                queue.TryPop(out int poppedRank, out int poppedPosition).Should().BeTrue();
                (poppedRank, poppedPosition).Should().Be((rank, position));
            }
        }

        foreach (IMergeQueue queue in queues)
        {
            queue.TryPop(out _, out _).Should().BeFalse();
        }
    }

    // A few ranks that share a slot of the open-run table (0, 256, 512) and a spread of others.
    private static int RandomRank(Random random) => random.Next(4) == 0 ? 256 * random.Next(3) : random.Next(50);
}
