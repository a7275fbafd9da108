using BlockAttention.Caching;
using BlockAttention.Caching.Persistence;
using BlockAttention.Tests.Checkpoints;

namespace BlockAttention.Tests.Caching.Persistence;

public class TieredKvBlockStoreTests
{
    [Fact]
    public async Task New_blocks_are_written_behind_and_slow_hits_are_promoted_to_memory()
    {
        using var dir = new TempDirectory();
        var block = TestBlocks.Random(TestBlocks.Tokens(1, 6));
        await using (var first = Tiered(dir.Path))
        {
            (await first.SetAsync(block)).Should().BeTrue();
            first.Memory.Statistics.Entries.Should().Be(1);
            await first.FlushAsync();
            first.TieredStatistics.WritesBehind.Should().Be(1);
        }

        await using var second = Tiered(dir.Path); // a restart: empty memory, same directory
        (await StoredBlocks.LookUpAsync(second, block)).Should().Be("hit");
        second.TieredStatistics.SlowHits.Should().Be(1);
        second.Memory.Statistics.Entries.Should().Be(1, "the slow hit was promoted");
        (await StoredBlocks.LookUpAsync(second, block)).Should().Be("hit");
        second.TieredStatistics.MemoryHits.Should().Be(1);
        second.Statistics.Hits.Should().Be(2);
        second.TieredStatistics.FetchBytesPerSecond.Should().BePositive();
        block.Release();
    }

    [Fact]
    public async Task A_block_whose_fetch_costs_more_than_encoding_it_is_encoded_and_counted()
    {
        using var dir = new TempDirectory();
        var a = TestBlocks.Random(TestBlocks.Tokens(1, 6));
        var b = TestBlocks.Random(TestBlocks.Tokens(2, 6));
        await using (var writer = Tiered(dir.Path))
        {
            await writer.SetAsync(a);
            await writer.SetAsync(b);
        }

        await using var store = Tiered(dir.Path);
        (await StoredBlocks.LookUpAsync(store, a)).Should().Be("hit", "nothing is measured yet: the slow tier is tried");
        double bandwidth = store.TieredStatistics.FetchBytesPerSecond;
        double fetchSecondsPerToken = (double)a.SizeInBytes / a.Length / bandwidth;

        store.OnBlockEncoded(1000, TimeSpan.FromSeconds(fetchSecondsPerToken * 1000 / 100)); // encoding 100x faster than fetching
        (await StoredBlocks.LookUpAsync(store, b)).Should().Be("miss", "fetching would take longer than encoding");
        store.TieredStatistics.SkippedAsSlowerThanEncoding.Should().Be(1);

        store.OnBlockEncoded(1000, TimeSpan.FromSeconds(1000)); // now encoding is far slower
        for (int i = 0; i < 20 && store.TieredStatistics.EncodeSecondsPerToken < fetchSecondsPerToken * 10; i++)
        {
            store.OnBlockEncoded(1000, TimeSpan.FromSeconds(1000));
        }

        (await StoredBlocks.LookUpAsync(store, b)).Should().Be("hit", "fetching is cheaper again");
        store.TieredStatistics.SkippedAsSlowerThanEncoding.Should().Be(1);
        a.Release();
        b.Release();
    }

    [Fact]
    public async Task A_failing_slow_tier_never_fails_a_request()
    {
        var logger = new ListLogger();
        var block = TestBlocks.Random(TestBlocks.Tokens(3, 6));
        var other = TestBlocks.Random(TestBlocks.Tokens(4, 6));
        await using var store = new TieredKvBlockStore(Memory(), new FailingStore(), new TieredKvBlockStoreOptions { LoggerFactory = logger });
        (await store.SetAsync(block)).Should().BeTrue("the memory tier keeps it");
        await store.FlushAsync();
        (await StoredBlocks.LookUpAsync(store, block)).Should().Be("hit");
        (await StoredBlocks.LookUpAsync(store, other)).Should().Be("miss");
        store.TieredStatistics.SlowTierFailures.Should().Be(2, "one failed write, one failed lookup");
        store.TieredStatistics.WritesDropped.Should().Be(1);
        logger.Warnings.Should().HaveCount(2);
        block.Release();
        other.Release();
    }

    [Fact]
    public async Task Requests_do_not_wait_for_the_slow_tier_and_a_full_queue_drops_writes()
    {
        var slow = new BlockedStore();
        var blocks = Enumerable.Range(0, 4).Select(i => TestBlocks.Random(TestBlocks.Tokens(10 + i))).ToArray();
        await using var store = new TieredKvBlockStore(Memory(), slow, new TieredKvBlockStoreOptions { MaxPendingWrites = 2 });
        foreach (var block in blocks)
        {
            var set = store.SetAsync(block).AsTask();
            (await Task.WhenAny(set, Task.Delay(TimeSpan.FromSeconds(10)))).Should().BeSameAs(set, "SetAsync returns without waiting for the slow tier");
            (await set).Should().BeTrue();
        }

        // One write is in progress (blocked) and one waits: the third and fourth found the queue full.
        TieredKvBlockStoreStatistics during;
        try
        {
            during = store.TieredStatistics;
        }
        finally
        {
            slow.Release.SetResult();
        }

        during.WritesDropped.Should().Be(2);
        during.PendingWrites.Should().Be(2);
        await store.FlushAsync();
        store.TieredStatistics.WritesBehind.Should().Be(2);
        slow.Written.Should().Be(2);
        store.Memory.Statistics.Entries.Should().Be(4, "every block is in memory whatever the slow tier does");
        foreach (var block in blocks)
        {
            block.Release();
        }
    }

    [Fact]
    public async Task Dispose_gives_up_on_a_slow_tier_that_never_finishes()
    {
        var slow = new BlockedStore();
        var logger = new ListLogger();
        var block = TestBlocks.Random(TestBlocks.Tokens(20));
        var store = new TieredKvBlockStore(Memory(), slow, new TieredKvBlockStoreOptions { DisposeTimeout = TimeSpan.FromMilliseconds(200), LoggerFactory = logger });
        await store.SetAsync(block);
        var dispose = store.DisposeAsync().AsTask();
        (await Task.WhenAny(dispose, Task.Delay(TimeSpan.FromSeconds(20)))).Should().BeSameAs(dispose);
        logger.Warnings.Should().ContainSingle(w => w.Contains("1 block"));
        slow.Release.SetResult();
        block.Release();
    }

    private static TieredKvBlockStore Tiered(string directory) =>
        new(Memory(), FileKvBlockStoreTests.Open(directory));

    private static MemoryKvBlockStore Memory() => new(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });

    /// <summary>A slow tier that is down: every call throws, as a client library does when its server is unreachable.</summary>
    private sealed class FailingStore : IKvBlockStore
    {
        public KvBlockStoreStatistics Statistics => default;

        public ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default) =>
            throw new IOException("connection refused");

        public ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default) => throw new IOException("connection refused");

        public ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default) => throw new IOException("connection refused");
    }

    /// <summary>A slow tier whose writes wait until released; it keeps nothing.</summary>
    private sealed class BlockedStore : IKvBlockStore
    {
        private int _written;

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public int Written => Volatile.Read(ref _written);

        public KvBlockStoreStatistics Statistics => default;

        public ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default) => ValueTask.FromResult<KvBlock?>(null);

        public async ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default)
        {
            await Release.Task;
            Interlocked.Increment(ref _written);
            return true;
        }

        public ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default) => ValueTask.FromResult(false);
    }
}
