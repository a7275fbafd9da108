using BlockAttention.Caching;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Caching;

public class MemoryKvBlockStoreTests
{
    private static readonly long s_blockBytes = TestBlocks.SizeOf(4);

    [Fact]
    public async Task A_kept_block_is_returned_with_a_reference_for_the_reader()
    {
        using var store = StoreFor(blocks: 4);
        int[] tokens = TestBlocks.Tokens(1);
        var block = TestBlocks.Random(tokens);

        (await store.SetAsync(block)).Should().BeTrue();
        block.Release(); // the creator is done; the store's own reference keeps the block
        block.IsAlive.Should().BeTrue();

        var hit = await store.TryGetAsync(block.Key, tokens);

        hit.Should().BeSameAs(block);
        store.Statistics.Should().Be(new KvBlockStoreStatistics(Hits: 1, Misses: 0, Sets: 1, Rejected: 0, Evictions: 0, Entries: 1, Bytes: s_blockBytes));
        hit!.Release();
        block.IsAlive.Should().BeTrue("the store still holds it");

        (await store.RemoveAsync(block.Key)).Should().BeTrue();

        block.IsAlive.Should().BeFalse("removal releases the store's reference before it returns");
        (await store.RemoveAsync(block.Key)).Should().BeFalse();
        (await store.TryGetAsync(block.Key, tokens)).Should().BeNull();
        store.Statistics.Should().Be(new KvBlockStoreStatistics(Hits: 1, Misses: 1, Sets: 1, Rejected: 0, Evictions: 0, Entries: 0, Bytes: 0));
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public async Task Bytes_are_the_exact_sum_of_held_blocks_through_removal_and_replacement(ScalarType dtype)
    {
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 1 << 20 });
        var blocks = Enumerable.Range(1, 5).Select(n => TestBlocks.Random(TestBlocks.Tokens(n, length: n), dtype)).ToList();
        foreach (var block in blocks)
        {
            (await store.SetAsync(block)).Should().BeTrue();
            block.Release();
        }

        long expected = Enumerable.Range(1, 5).Sum(n => TestBlocks.SizeOf(n, dtype));
        store.Statistics.Bytes.Should().Be(expected);
        store.Statistics.Entries.Should().Be(5);

        await store.RemoveAsync(blocks[2].Key);
        expected -= TestBlocks.SizeOf(3, dtype);
        store.Statistics.Bytes.Should().Be(expected);

        // A block under the key of blocks[0] but with other tokens (a collision) replaces it.
        int[] otherTokens = TestBlocks.Tokens(99, length: 1);
        var replacement = TestBlocks.Random(blocks[0].Key, otherTokens, dtype);
        (await store.SetAsync(replacement)).Should().BeTrue();
        replacement.Release();

        blocks[0].IsAlive.Should().BeFalse("the replaced block's only reference was the store's");
        store.Statistics.Bytes.Should().Be(expected, "the replacement has the same size as the block it replaced");
        store.Statistics.Entries.Should().Be(4);
        store.Statistics.Evictions.Should().Be(0, "neither a removal nor a replacement is an eviction");
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public async Task Bytes_stay_exact_and_within_the_limit_while_evicting(ScalarType dtype)
    {
        long unit = TestBlocks.SizeOf(1, dtype);
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 10 * unit });
        var blocks = new List<KvBlock>();
        foreach (int length in new[] { 3, 1, 6, 2, 5, 4, 1, 6, 3, 2, 5 })
        {
            var block = TestBlocks.Random(TestBlocks.Tokens(blocks.Count, length), dtype);
            blocks.Add(block);
            (await store.SetAsync(block)).Should().BeTrue("every block fits once older ones leave");
            block.Release();

            // No reader holds a block here, so a block is alive exactly when the store holds it;
            // no wait is needed because evictions are accounted before SetAsync returns.
            var held = blocks.Where(b => b.IsAlive).ToList();
            held.Should().Contain(block, "the newest block is always kept");
            var statistics = store.Statistics;
            statistics.Bytes.Should().Be(held.Sum(b => b.SizeInBytes));
            statistics.Bytes.Should().BeLessThanOrEqualTo(10 * unit);
            statistics.Entries.Should().Be(held.Count);
            statistics.Evictions.Should().Be(blocks.Count - held.Count);
        }
    }

    [Fact]
    public async Task Tokens_that_differ_from_the_stored_block_are_a_miss()
    {
        using var store = StoreFor(blocks: 4);
        int[] stored = TestBlocks.Tokens(1);
        int[] asked = TestBlocks.Tokens(2);
        var block = TestBlocks.Random(stored);
        await store.SetAsync(block);
        block.Release();

        // Same key, other tokens: what a hash collision would look like to the store.
        (await store.TryGetAsync(block.Key, asked)).Should().BeNull();
        (await store.TryGetAsync(block.Key, stored.AsMemory(0, 3))).Should().BeNull();

        store.Statistics.Misses.Should().Be(2);
        store.Statistics.Hits.Should().Be(0);
        block.IsAlive.Should().BeTrue("a miss leaves the stored block alone");
    }

    [Theory]
    [InlineData("remove")]
    [InlineData("evict")]
    [InlineData("clear")]
    [InlineData("dispose")]
    public async Task A_block_a_reader_holds_stays_readable_until_the_reader_releases_it(string how)
    {
        var store = StoreFor(blocks: 2);
        int[] tokens = TestBlocks.Tokens(1);
        var block = TestBlocks.Random(tokens);
        using var expectedKeys = block.Keys.clone();
        using var expectedValues = block.Values.clone();
        await store.SetAsync(block);
        block.Release();

        var reader = await store.TryGetAsync(block.Key, tokens);
        reader.Should().NotBeNull();

        var others = new List<KvBlock>();
        switch (how)
        {
            case "remove":
                (await store.RemoveAsync(block.Key)).Should().BeTrue();
                break;
            case "evict":
                for (int i = 2; i <= 3; i++)
                {
                    var other = TestBlocks.Random(TestBlocks.Tokens(i));
                    others.Add(other);
                    await store.SetAsync(other);
                    other.Release();
                }

                store.Statistics.Evictions.Should().Be(1, "the reader's block was the least recently used");
                break;
            case "clear":
                store.Clear();
                break;
            case "dispose":
                store.Dispose();
                break;
        }

        store.Statistics.Bytes.Should().Be(others.Count * s_blockBytes, "the store no longer counts the reader's block");
        reader!.IsAlive.Should().BeTrue();
        reader.Keys.allclose(expectedKeys, rtol: 0, atol: 0).Should().BeTrue("the reader still sees the states it got");
        reader.Values.allclose(expectedValues, rtol: 0, atol: 0).Should().BeTrue();

        reader.Release();

        reader.IsAlive.Should().BeFalse("the reader held the last reference");
        reader.Invoking(r => r.Keys).Should().Throw<ObjectDisposedException>();
        store.Dispose();
        others.Where(b => b.IsAlive).Should().BeEmpty();
    }

    [Fact]
    public async Task The_least_recently_used_block_leaves_first()
    {
        var clock = new ManualTimeProvider();
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 3 * s_blockBytes, TimeProvider = clock });
        var (a, b, c, d, e) = (Block(1), Block(2), Block(3), Block(4), Block(5));
        foreach (var block in new[] { a, b, c })
        {
            await Add(block);
        }

        (await store.TryGetAsync(a.Key, a.Tokens.ToArray()))!.Release(); // A becomes the most recently used
        clock.Advance(TimeSpan.FromSeconds(1));
        await Add(d);

        b.IsAlive.Should().BeFalse("B was the least recently used");
        new[] { a, c, d }.Should().OnlyContain(x => x.IsAlive);

        await Add(e);

        c.IsAlive.Should().BeFalse("C was set before A was read");
        new[] { a, d, e }.Should().OnlyContain(x => x.IsAlive);
        store.Statistics.Evictions.Should().Be(2);
        store.Statistics.Bytes.Should().Be(3 * s_blockBytes);

        async Task Add(KvBlock block)
        {
            (await store.SetAsync(block)).Should().BeTrue();
            block.Release();
            clock.Advance(TimeSpan.FromSeconds(1));
        }

        static KvBlock Block(int seed) => TestBlocks.Random(TestBlocks.Tokens(seed));
    }

    [Fact]
    public async Task CompactionPercentage_frees_extra_room_when_the_store_must_evict()
    {
        var clock = new ManualTimeProvider();
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions
        {
            MaxBytes = 4 * s_blockBytes,
            CompactionPercentage = 0.5,
            TimeProvider = clock,
        });
        var blocks = Enumerable.Range(1, 5).Select(i => TestBlocks.Random(TestBlocks.Tokens(i))).ToArray();
        foreach (var block in blocks)
        {
            await store.SetAsync(block);
            block.Release();
            clock.Advance(TimeSpan.FromSeconds(1));
        }

        // Adding the fifth needs one block's room plus half the limit: the three oldest leave.
        blocks.Select(b => b.IsAlive).Should().Equal(false, false, false, true, true);
        store.Statistics.Evictions.Should().Be(3);
        store.Statistics.Bytes.Should().Be(2 * s_blockBytes);
    }

    [Fact]
    public async Task A_block_larger_than_the_limit_is_rejected_and_stays_the_callers()
    {
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = s_blockBytes - 1 });
        var block = TestBlocks.Random(TestBlocks.Tokens(1));

        (await store.SetAsync(block)).Should().BeFalse();

        store.Statistics.Should().Be(new KvBlockStoreStatistics(Hits: 0, Misses: 0, Sets: 0, Rejected: 1, Evictions: 0, Entries: 0, Bytes: 0));
        block.IsAlive.Should().BeTrue();
        block.Release();
        block.IsAlive.Should().BeFalse("the store took no reference on a block it rejected");
    }

    [Fact]
    public async Task Offering_the_same_tokens_again_keeps_the_first_block_and_counts_it_once()
    {
        using var store = StoreFor(blocks: 4);
        int[] tokens = TestBlocks.Tokens(1);
        var first = TestBlocks.Random(tokens);
        var second = TestBlocks.Random(tokens); // encoded concurrently by another request

        (await store.SetAsync(first)).Should().BeTrue();
        (await store.SetAsync(second)).Should().BeTrue();
        first.Release();
        second.Release();

        second.IsAlive.Should().BeFalse("the store kept the first block and took no reference on the second");
        store.Statistics.Sets.Should().Be(1);
        store.Statistics.Entries.Should().Be(1);
        store.Statistics.Bytes.Should().Be(s_blockBytes);
        var hit = await store.TryGetAsync(first.Key, tokens);
        hit.Should().BeSameAs(first);
        hit!.Release();
    }

    [Fact]
    public async Task An_expired_block_is_released_by_the_eviction_callback()
    {
        var clock = new ManualTimeProvider();
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions
        {
            MaxBytes = 4 * s_blockBytes,
            SlidingExpiration = TimeSpan.FromMinutes(1),
            TimeProvider = clock,
        });
        int[] tokens = TestBlocks.Tokens(1);
        var block = TestBlocks.Random(tokens);
        await store.SetAsync(block);
        block.Release();

        clock.Advance(TimeSpan.FromMinutes(2));

        (await store.TryGetAsync(block.Key, tokens)).Should().BeNull();
        // Expiry is the one removal the cache reports only through its thread-pool callback.
        await TestBlocks.Eventually(() => !block.IsAlive, "the expired block is freed");
        store.Statistics.Should().Be(new KvBlockStoreStatistics(Hits: 0, Misses: 1, Sets: 1, Rejected: 0, Evictions: 1, Entries: 0, Bytes: 0));
    }

    [Fact]
    public async Task Dispose_releases_every_block_and_refuses_further_use()
    {
        var store = StoreFor(blocks: 4);
        var blocks = Enumerable.Range(1, 3).Select(i => TestBlocks.Random(TestBlocks.Tokens(i))).ToArray();
        foreach (var block in blocks)
        {
            await store.SetAsync(block);
            block.Release();
        }

        store.Dispose();

        blocks.Should().OnlyContain(b => !b.IsAlive, "the store's references were the last ones");
        store.Statistics.Entries.Should().Be(0);
        store.Statistics.Bytes.Should().Be(0);
        store.Dispose(); // idempotent
        await store.Invoking(s => s.TryGetAsync(blocks[0].Key, blocks[0].Tokens.ToArray()).AsTask()).Should().ThrowAsync<ObjectDisposedException>();
        var fresh = TestBlocks.Random(TestBlocks.Tokens(9));
        await store.Invoking(s => s.SetAsync(fresh).AsTask()).Should().ThrowAsync<ObjectDisposedException>();
        await store.Invoking(s => s.RemoveAsync(fresh.Key).AsTask()).Should().ThrowAsync<ObjectDisposedException>();
        store.Invoking(s => s.Clear()).Should().Throw<ObjectDisposedException>();
        fresh.Release();
    }

    [Fact]
    public async Task Clear_removes_every_block_without_counting_evictions()
    {
        using var store = StoreFor(blocks: 4);
        var blocks = Enumerable.Range(1, 3).Select(i => TestBlocks.Random(TestBlocks.Tokens(i))).ToArray();
        foreach (var block in blocks)
        {
            await store.SetAsync(block);
            block.Release();
        }

        store.Clear();

        blocks.Should().OnlyContain(b => !b.IsAlive);
        store.Statistics.Should().Be(new KvBlockStoreStatistics(Hits: 0, Misses: 0, Sets: 3, Rejected: 0, Evictions: 0, Entries: 0, Bytes: 0));
        var again = TestBlocks.Random(TestBlocks.Tokens(1));
        (await store.SetAsync(again)).Should().BeTrue("the store is usable after Clear");
        again.Release();
    }

    [Fact]
    public async Task Offering_a_freed_block_is_an_error()
    {
        using var store = StoreFor(blocks: 4);
        var block = TestBlocks.Random(TestBlocks.Tokens(1));
        block.Release();

        await store.Invoking(s => s.SetAsync(block).AsTask()).Should().ThrowAsync<ArgumentException>().WithMessage("*already freed*");
        store.Statistics.Entries.Should().Be(0);
        store.Statistics.Bytes.Should().Be(0);
    }

    [Fact]
    public void Options_out_of_range_are_rejected()
    {
        Invalid(new() { MaxBytes = 0 });
        Invalid(new() { MaxBytes = -1 });
        Invalid(new() { MaxBytes = 1, CompactionPercentage = 1.0 });
        Invalid(new() { MaxBytes = 1, CompactionPercentage = -0.1 });
        Invalid(new() { MaxBytes = 1, SlidingExpiration = TimeSpan.Zero });
        Invalid(new() { MaxBytes = 1, ExpirationScanFrequency = TimeSpan.Zero });

        static void Invalid(MemoryKvBlockStoreOptions options) =>
            options.Invoking(o => new MemoryKvBlockStore(o)).Should().Throw<ArgumentOutOfRangeException>();
    }

    private static MemoryKvBlockStore StoreFor(int blocks) => new(new MemoryKvBlockStoreOptions { MaxBytes = blocks * s_blockBytes });
}
