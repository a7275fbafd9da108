using System.Buffers.Binary;
using System.IO.Hashing;
using BlockAttention.Caching;
using BlockAttention.Caching.Persistence;
using BlockAttention.Tests.Checkpoints;

namespace BlockAttention.Tests.Caching.Persistence;

/// <summary>
/// Damaged or misplaced block files: each lookup must end in a miss (the file deleted and a warning
/// logged) and never in a wrong hit or an exception; storing the block again then gives a correct hit.
/// </summary>
public class FileStoreFaultTests
{
    [Fact]
    public Task Truncated_file_is_a_miss() => AssertMissThenRecovery(
        (path, _, _) =>
        {
            using var stream = new FileStream(path, FileMode.Open);
            stream.SetLength(stream.Length / 2);
        },
        "truncated");

    [Fact]
    public Task Truncated_checksum_is_a_miss() => AssertMissThenRecovery(
        (path, _, _) =>
        {
            using var stream = new FileStream(path, FileMode.Open);
            stream.SetLength(stream.Length - 1);
        },
        "truncated");

    [Fact]
    public Task Flipped_payload_byte_is_a_miss() => AssertMissThenRecovery(
        (path, _, _) =>
        {
            byte[] bytes = File.ReadAllBytes(path);
            bytes[bytes.Length - 16 - 5] ^= 0x01; // one bit of the last value element
            File.WriteAllBytes(path, bytes);
        },
        "checksum mismatch");

    [Fact]
    public Task Wrong_model_fingerprint_is_a_miss() => AssertMissThenRecovery(
        (path, store, block) =>
        {
            // The same tokens encoded by another model, copied under this model's name.
            var other = new KvBlock(BlockKey.For("another-model", block.Tokens), block.Tokens, block.Keys.clone(), block.Values.clone());
            store.SetAsync(other).AsTask().GetAwaiter().GetResult();
            File.Copy(store.PathOf(other.Key), path, overwrite: true);
            other.Release();
        },
        "written by model 'another-model'");

    [Fact]
    public Task Wrong_format_version_is_a_miss() => AssertMissThenRecovery(
        (path, _, _) =>
        {
            // Version 2 with a valid checksum: only the version is wrong.
            byte[] bytes = File.ReadAllBytes(path);
            BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8), KvBlockFormat.Version + 1);
            XxHash128.Hash(bytes.AsSpan(0, bytes.Length - 16)).CopyTo(bytes, bytes.Length - 16);
            File.WriteAllBytes(path, bytes);
        },
        $"format version {KvBlockFormat.Version + 1}");

    [Fact]
    public Task File_for_other_tokens_under_the_right_name_is_a_miss() => AssertMissThenRecovery(
        (path, store, block) =>
        {
            int[] others = block.Tokens.ToArray().Select(t => t + 1).ToArray();
            var other = TestBlocks.Random(others);
            store.SetAsync(other).AsTask().GetAwaiter().GetResult();
            File.Copy(store.PathOf(other.Key), path, overwrite: true);
            other.Release();
        },
        "token ids differ");

    [Fact]
    public Task Garbage_file_is_a_miss() => AssertMissThenRecovery(
        (path, _, _) => File.WriteAllBytes(path, new byte[1000]),
        "magic bytes differ");

    [Fact]
    public Task Empty_file_is_a_miss() => AssertMissThenRecovery(
        (path, _, _) => File.WriteAllBytes(path, []),
        "truncated");

    private static async Task AssertMissThenRecovery(Action<string, FileKvBlockStore, KvBlock> damage, string reason)
    {
        using var dir = new TempDirectory();
        var logger = new ListLogger();
        var block = TestBlocks.Random(TestBlocks.Tokens(7, 6));
        try
        {
            var store = FileKvBlockStoreTests.Open(dir.Path, logger: logger);
            (await store.SetAsync(block)).Should().BeTrue();
            string path = store.PathOf(block.Key);
            damage(path, store, block);

            var reader = FileKvBlockStoreTests.Open(dir.Path, logger: logger); // as after a restart
            (await StoredBlocks.LookUpAsync(reader, block)).Should().Be("miss");
            reader.DamagedFiles.Should().Be(1);
            File.Exists(path).Should().BeFalse("an unusable file is deleted");
            logger.Warnings.Should().ContainSingle(w => w.Contains(path) && w.Contains(reason, StringComparison.Ordinal));

            (await reader.SetAsync(block)).Should().BeTrue();
            (await StoredBlocks.LookUpAsync(reader, block)).Should().Be("hit", "the block stored again is served exactly");
        }
        finally
        {
            block.Release();
        }
    }
}
