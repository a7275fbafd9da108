using System.Diagnostics;
using BlockAttention.Caching;
using BlockAttention.Redis;
using BlockAttention.Tests.Caching.Persistence;
using StackExchange.Redis;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Caching.Redis;

/// <summary>
/// The Redis store against a real server. Each fault test says how the lookup ended: a miss (the
/// block would be encoded) or a correct, bit-exact hit; never a wrong hit, an exception or a hang.
/// </summary>
public abstract class RedisStoreTests : IDisposable
{
    private readonly TestRedisServer _server;

    private protected RedisStoreTests(TestRedisServer server)
    {
        _server = server;
    }

    public void Dispose()
    {
        _server.Dispose();
        GC.SuppressFinalize(this);
    }

    [Fact]
    public async Task A_second_store_reads_the_first_ones_blocks_bit_exactly()
    {
        var block = TestBlocks.Random(TestBlocks.Tokens(1, 9), ScalarType.BFloat16);
        using (var writer = Open(ScalarType.BFloat16))
        {
            (await writer.SetAsync(block)).Should().BeTrue();
        }

        using var reader = Open(ScalarType.BFloat16); // another connection, as another process
        (await StoredBlocks.LookUpAsync(reader, block)).Should().Be("hit");
        reader.Statistics.Hits.Should().Be(1);
        block.Release();
    }

    [Fact]
    public async Task A_block_larger_than_one_chunk_is_written_and_read_in_pieces()
    {
        var block = TestBlocks.Random(TestBlocks.Tokens(2, 300)); // 76 KiB, chunks of 8 KiB
        var logger = new ListLogger();
        using var store = Open(chunkBytes: 8192, logger: logger);
        (await store.SetAsync(block)).Should().BeTrue(string.Join("\n", logger.Entries.Select(e => e.Message)));
        (await StoredBlocks.LookUpAsync(store, block)).Should().Be("hit");
        block.Release();
    }

    [Fact]
    public async Task A_value_overwritten_with_garbage_is_a_miss_and_deleted()
    {
        var logger = new ListLogger();
        var block = TestBlocks.Random(TestBlocks.Tokens(3, 5));
        using var store = Open(logger: logger);
        await store.SetAsync(block);
        using (var direct = await ConnectionMultiplexer.ConnectAsync(_server.Configuration))
        {
            await direct.GetDatabase().StringSetAsync(store.KeyOf(block.Key), "this is not a block, but it is long enough to have a header");
        }

        (await StoredBlocks.LookUpAsync(store, block)).Should().Be("miss");
        store.DamagedValues.Should().Be(1);
        logger.Warnings.Should().ContainSingle(w => w.Contains("magic bytes differ"));
        await Eventually(async () => !await KeyExistsAsync(store.KeyOf(block.Key)), "the damaged value is deleted");

        (await store.SetAsync(block)).Should().BeTrue();
        (await StoredBlocks.LookUpAsync(store, block)).Should().Be("hit", "the block stored again is served exactly");
        block.Release();
    }

    [Fact]
    public async Task A_value_with_a_flipped_byte_is_a_miss()
    {
        var block = TestBlocks.Random(TestBlocks.Tokens(4, 5));
        using var store = Open();
        await store.SetAsync(block);
        using (var direct = await ConnectionMultiplexer.ConnectAsync(_server.Configuration))
        {
            var db = direct.GetDatabase();
            byte[] bytes = (byte[])(await db.StringGetAsync(store.KeyOf(block.Key)))!;
            bytes[bytes.Length / 2] ^= 0x80;
            await db.StringSetAsync(store.KeyOf(block.Key), bytes);
        }

        (await StoredBlocks.LookUpAsync(store, block)).Should().Be("miss");
        store.DamagedValues.Should().Be(1);
        block.Release();
    }

    [Fact]
    public async Task Keys_have_the_prefix_and_the_time_to_live()
    {
        var block = TestBlocks.Random(TestBlocks.Tokens(5, 5));
        using var store = Open(timeToLive: TimeSpan.FromMinutes(30));
        await store.SetAsync(block);
        using var direct = await ConnectionMultiplexer.ConnectAsync(_server.Configuration);
        var db = direct.GetDatabase();
        string key = store.KeyOf(block.Key);
        key.Should().StartWith("test-prefix:");
        var ttl = await db.KeyTimeToLiveAsync(key);
        ttl.Should().NotBeNull();
        ttl!.Value.Should().BeGreaterThan(TimeSpan.FromMinutes(29)).And.BeLessThanOrEqualTo(TimeSpan.FromMinutes(30));
        var server = direct.GetServer(direct.GetEndPoints()[0]);
        server.Keys(pattern: "test-prefix:*:writing:*").Should().BeEmpty("the temporary key was renamed into place");
        block.Release();
    }

    [Fact]
    public async Task Server_stopped_mid_run_gives_misses_within_the_timeout_and_is_used_again_once_restarted()
    {
        var logger = new ListLogger();
        var before = TestBlocks.Random(TestBlocks.Tokens(6, 5));
        var during = TestBlocks.Random(TestBlocks.Tokens(7, 5));
        using var store = Open(logger: logger, retryAfter: TimeSpan.FromMilliseconds(200));
        await Eventually(async () => await store.SetAsync(before), "the first write goes through (the machine may be busy)");
        (await StoredBlocks.LookUpAsync(store, before)).Should().Be("hit");

        _server.Stop();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 5; i++)
        {
            (await StoredBlocks.LookUpAsync(store, before)).Should().Be("miss", "the server is down");
            (await store.SetAsync(during)).Should().BeFalse("the server is down");
        }

        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10), "no call waits longer than its timeout");
        logger.Warnings.Should().Contain(w => w.Contains("Redis failed"));
        store.Failures.Should().BeGreaterThan(0);

        _server.Start(); // empty: this server keeps nothing on disk
        await Eventually(async () => await store.SetAsync(during), "the store writes again once the server is back");
        (await StoredBlocks.LookUpAsync(store, during)).Should().Be("hit", "the restarted server is used again");
        (await StoredBlocks.LookUpAsync(store, before)).Should().Be("miss", "the restarted server lost what it had");
        before.Release();
        during.Release();
    }

    [Fact]
    public async Task A_server_that_stops_answering_gives_misses_within_the_timeout()
    {
        using var proxy = new StallingProxy(_server.Port);
        var block = TestBlocks.Random(TestBlocks.Tokens(8, 5));
        using var store = Open(configuration: proxy.Configuration, operationTimeout: TimeSpan.FromSeconds(1), retryAfter: TimeSpan.FromMilliseconds(100));
        await Eventually(async () => await store.SetAsync(block), "the first write goes through (the machine may be busy)");

        proxy.Stalled = true;
        var clock = Stopwatch.StartNew();
        (await StoredBlocks.LookUpAsync(store, block)).Should().Be("miss", "the server does not answer");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(8), "the lookup gives up after its timeout (1 s, at most twice that with the grace period)");
        clock.Restart();
        (await store.SetAsync(block)).Should().BeFalse();
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(8));

        proxy.Stalled = false;
        await Eventually(async () => await StoredBlocks.LookUpAsync(store, block) == "hit", "the store reads again once the server answers");
        block.Release();
    }

    [Fact]
    public async Task The_store_starts_while_the_server_is_down()
    {
        _server.Stop();
        var block = TestBlocks.Random(TestBlocks.Tokens(9, 5));
        var clock = Stopwatch.StartNew();
        using var store = Open(retryAfter: TimeSpan.FromMilliseconds(100));
        (await StoredBlocks.LookUpAsync(store, block)).Should().Be("miss");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10));
        _server.Start();
        await Eventually(async () => await store.SetAsync(block), "the store connects once the server is up");
        (await StoredBlocks.LookUpAsync(store, block)).Should().Be("hit");
        block.Release();
    }

    private RedisKvBlockStore Open(ScalarType dtype = ScalarType.Float32, ListLogger? logger = null, TimeSpan? retryAfter = null,
        int chunkBytes = 1 << 20, TimeSpan? timeToLive = null, string? configuration = null, TimeSpan? operationTimeout = null) =>
        new(new RedisKvBlockStoreOptions
        {
            Configuration = configuration ?? _server.Configuration,
            KeyPrefix = "test-prefix:",
            DType = dtype,
            LoggerFactory = logger,
            RetryAfter = retryAfter ?? TimeSpan.FromSeconds(1),
            ChunkBytes = chunkBytes,
            TimeToLive = timeToLive ?? TimeSpan.FromHours(1),
            OperationTimeout = operationTimeout ?? TimeSpan.FromSeconds(5), // generous: the test machine is shared
        });

    private async Task<bool> KeyExistsAsync(string key)
    {
        using var direct = await ConnectionMultiplexer.ConnectAsync(_server.Configuration);
        return await direct.GetDatabase().KeyExistsAsync(key);
    }

    private static async Task Eventually(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting until {what}");
            }

            await Task.Delay(50);
        }
    }
}

/// <summary>The Redis store's tests against Debian's redis-server (against Garnet where redis-server is not installed).</summary>
public sealed class RedisServerStoreTests() : RedisStoreTests(TestRedisServer.StartRedisOrGarnet());

/// <summary>The Redis store's tests against Garnet, in process.</summary>
public sealed class GarnetStoreTests() : RedisStoreTests(TestRedisServer.StartGarnet());
