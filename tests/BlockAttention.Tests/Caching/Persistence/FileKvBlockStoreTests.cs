using BlockAttention.Caching;
using BlockAttention.Caching.Persistence;
using BlockAttention.Tests.Checkpoints;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Caching.Persistence;

public class FileKvBlockStoreTests
{
    [Fact]
    public async Task A_new_store_on_the_directory_finds_the_blocks_of_an_earlier_one()
    {
        using var dir = new TempDirectory();
        var block = TestBlocks.Random(TestBlocks.Tokens(1, 5), ScalarType.BFloat16);
        try
        {
            var first = Open(dir.Path, ScalarType.BFloat16);
            (await first.SetAsync(block)).Should().BeTrue();

            var second = Open(dir.Path, ScalarType.BFloat16);
            second.Statistics.Entries.Should().Be(1, "the new store indexes the files it finds");
            (await StoredBlocks.LookUpAsync(second, block)).Should().Be("hit");
            second.Statistics.Hits.Should().Be(1);
        }
        finally
        {
            block.Release();
        }
    }

    [Fact]
    public async Task A_block_of_another_dtype_is_a_miss()
    {
        using var dir = new TempDirectory();
        var block = TestBlocks.Random(TestBlocks.Tokens(1, 5), ScalarType.Float16);
        await Open(dir.Path, ScalarType.Float16).SetAsync(block);
        (await StoredBlocks.LookUpAsync(Open(dir.Path, ScalarType.Float32), block)).Should().Be("miss");
        block.Release();
    }

    [Fact]
    public async Task Least_recently_used_files_are_deleted_when_a_write_exceeds_the_budget()
    {
        using var dir = new TempDirectory();
        var a = TestBlocks.Random(TestBlocks.Tokens(1));
        var b = TestBlocks.Random(TestBlocks.Tokens(2));
        var c = TestBlocks.Random(TestBlocks.Tokens(3));
        long fileSize = KvBlockFormat.SerializedLength(a);
        var store = Open(dir.Path, maxBytes: 2 * fileSize + fileSize / 2);
        await store.SetAsync(a);
        await Task.Delay(20);
        await store.SetAsync(b);
        await Task.Delay(20);
        (await StoredBlocks.LookUpAsync(store, a)).Should().Be("hit"); // a is now more recent than b
        await Task.Delay(20);
        await store.SetAsync(c);

        File.Exists(store.PathOf(b.Key)).Should().BeFalse("b was the least recently used");
        File.Exists(store.PathOf(a.Key)).Should().BeTrue();
        File.Exists(store.PathOf(c.Key)).Should().BeTrue();
        store.Statistics.Evictions.Should().Be(1);
        store.Statistics.Bytes.Should().Be(2 * fileSize);
        foreach (var block in new[] { a, b, c })
        {
            block.Release();
        }
    }

    [Fact]
    public async Task A_block_larger_than_the_budget_is_declined()
    {
        using var dir = new TempDirectory();
        var block = TestBlocks.Random(TestBlocks.Tokens(1));
        var store = Open(dir.Path, maxBytes: 100);
        (await store.SetAsync(block)).Should().BeFalse();
        store.Statistics.Rejected.Should().Be(1);
        Directory.EnumerateFileSystemEntries(dir.Path).Should().BeEmpty();
        block.Release();
    }

    internal static FileKvBlockStore Open(string directory, ScalarType dtype = ScalarType.Float32, long maxBytes = 1L << 30, ListLogger? logger = null) =>
        new(new FileKvBlockStoreOptions { Directory = directory, DType = dtype, MaxBytes = maxBytes, LoggerFactory = logger });
}
