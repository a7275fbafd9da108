using System.Collections.Concurrent;
using System.Diagnostics;
using BlockAttention.Caching;

namespace BlockAttention.Tests.Caching;

public class MemoryKvBlockStoreStressTests
{
    private const int Keys = 20;
    private const int Workers = 8;
    private const int MinimumRounds = 200;
    private static readonly TimeSpan s_duration = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task Parallel_readers_and_writers_see_only_live_blocks_of_their_own_key_and_nothing_leaks()
    {
        // Blocks of 3 to 5 tokens under a limit of about five of them: constant eviction.
        int[][] tokens = Enumerable.Range(0, Keys).Select(k => TestBlocks.Tokens(k, 3 + (k % 3))).ToArray();
        long maxBytes = 5 * TestBlocks.SizeOf(4);
        var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = maxBytes });
        var created = new ConcurrentBag<KvBlock>();
        long lookups = 0;
        TestBlocks.Filled(tokens[0], 1).Release(); // load TorchSharp before the clock starts
        var clock = Stopwatch.StartNew();

        var workers = Enumerable.Range(0, Workers).Select(worker => Task.Run(async () =>
        {
            var random = new Random(worker);
            // Time-bound, but with a floor of rounds so that a slow, shared machine still exercises hits and evictions.
            for (int round = 0; round < MinimumRounds || clock.Elapsed < s_duration; round++)
            {
                int k = random.Next(Keys);
                var key = BlockKey.For(TestBlocks.Fingerprint, tokens[k]);
                var block = await store.TryGetAsync(key, tokens[k]);
                Interlocked.Increment(ref lookups);
                if (block is null)
                {
                    block = TestBlocks.Filled(tokens[k], k + 1);
                    created.Add(block);
                    await store.SetAsync(block);
                }

                try
                {
                    Check(block, k);
                    await Task.Yield(); // let evictions happen while this reader holds the block
                    Check(block, k);
                }
                finally
                {
                    block.Release();
                }

                if (random.Next(40) == 0)
                {
                    await store.RemoveAsync(key);
                }

                long bytes = store.Statistics.Bytes;
                if (bytes > maxBytes)
                {
                    throw new InvalidOperationException($"the store holds {bytes} bytes, over its limit of {maxBytes}");
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);

        var statistics = store.Statistics;
        statistics.Hits.Should().BePositive();
        statistics.Evictions.Should().BePositive();
        (statistics.Hits + statistics.Misses).Should().Be(Interlocked.Read(ref lookups));
        var held = created.Where(b => b.IsAlive).ToList(); // no reader is left, so alive means held by the store
        statistics.Entries.Should().Be(held.Count);
        statistics.Bytes.Should().Be(held.Sum(b => b.SizeInBytes));

        store.Dispose();

        created.Where(b => b.IsAlive).Should().BeEmpty("every block is freed once the store and all readers released it");
    }

    private static void Check(KvBlock block, int k)
    {
        if (!block.IsAlive || !block.Encodes(TestBlocks.Tokens(k, 3 + (k % 3)))
            || !TestBlocks.AllEqual(block.Keys, k + 1) || !TestBlocks.AllEqual(block.Values, -(k + 1)))
        {
            throw new InvalidOperationException($"a reader of key {k} holds a freed block or another key's states");
        }
    }
}
