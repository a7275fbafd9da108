using BlockAttention.Caching;
using BlockAttention.Caching.Persistence;
using BlockAttention.Redis;
using BlockAttention.Tests.Checkpoints;

namespace BlockAttention.Tests.Caching;

public class KvBlockStoreSpecTests
{
    [Theory]
    [InlineData("none", "none")]
    [InlineData("memory", "memory")]
    [InlineData(" MEMORY ", "memory")]
    [InlineData("file:/var/cache/ba", "file:/var/cache/ba")]
    [InlineData("file:C:/odd+dir:x", "file:C:/odd+dir:x")]
    [InlineData("redis:localhost:6380", "redis:localhost:6380")]
    [InlineData("redis:cache1", "redis:cache1:6379")]
    [InlineData("redis:[::1]:7000", "redis:[::1]:7000")]
    [InlineData("memory+file:/tmp/x", "memory+file:/tmp/x")]
    [InlineData("Memory+Redis:10.0.0.5:6379", "memory+redis:10.0.0.5:6379")]
    public void Specs_parse_and_print_back(string spec, string printed)
    {
        KvBlockStoreSpec.Parse(spec).ToString().Should().Be(printed);
        KvBlockStoreSpec.Parse(printed).ToString().Should().Be(printed);
    }

    [Fact]
    public void Tiers_carry_their_parts()
    {
        var spec = KvBlockStoreSpec.Parse("memory+redis:[::1]:7000");
        spec.Tiers.Select(t => t.Kind).Should().Equal(KvBlockStoreKind.Memory, KvBlockStoreKind.Redis);
        spec.Tiers[1].Host.Should().Be("::1");
        spec.Tiers[1].Port.Should().Be(7000);
        spec.IsPersistent.Should().BeTrue();
        KvBlockStoreSpec.Parse("memory").IsPersistent.Should().BeFalse();
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("disk:/tmp", "'disk' is not a store kind")]
    [InlineData("file:", "file needs a directory")]
    [InlineData("redis:", "redis needs a host")]
    [InlineData("redis:host:0", "'0' is not a port")]
    [InlineData("redis:host:99999", "'99999' is not a port")]
    [InlineData("redis:host:six", "'six' is not a port")]
    [InlineData("redis:::1:6379", "IPv6 address in brackets")]
    [InlineData("redis:[::1", "closing ]")]
    [InlineData("file:/a+memory", null)]
    [InlineData("file:/x+file:/y", null)]
    [InlineData("memory+memory", "memory can only be the first tier")]
    public void Bad_specs_are_refused_with_the_reason(string spec, string? reason)
    {
        if (reason is null)
        {
            // A '+' after a file tier is part of its directory, not another tier.
            KvBlockStoreSpec.Parse(spec).Tiers.Should().ContainSingle();
            return;
        }

        var act = () => KvBlockStoreSpec.Parse(spec);
        act.Should().Throw<FormatException>().WithMessage($"*{reason}*").WithMessage($"'{spec}' is not a block store spec*");
        KvBlockStoreSpec.TryParse(spec, out var parsed, out string? error).Should().BeFalse();
        parsed.Should().BeNull();
        error.Should().Contain(reason);
    }

    [Fact]
    public async Task The_factory_builds_what_the_spec_says()
    {
        using var dir = new TempDirectory();
        var settings = new KvBlockStoreSettings();
        KvBlockStoreFactory.Create("none", settings).Should().BeNull();
        using (var memory = (MemoryKvBlockStore)KvBlockStoreFactory.Create("memory", settings)!)
        {
            memory.MaxBytes.Should().Be(settings.MemoryMaxBytes);
        }

        KvBlockStoreFactory.Create($"file:{dir.Path}", settings).Should().BeOfType<FileKvBlockStore>()
            .Which.DirectoryPath.Should().Be(dir.Path);
        await using (var tiered = (TieredKvBlockStore)KvBlockStoreFactory.Create($"memory+file:{dir.Path}", settings)!)
        {
            tiered.Slow.Should().BeOfType<FileKvBlockStore>();
        }

        var redisWithoutPackage = () => KvBlockStoreFactory.Create("redis:localhost:6379", settings);
        redisWithoutPackage.Should().Throw<NotSupportedException>().WithMessage("*BlockAttention.Redis*");
        using var redis = (RedisKvBlockStore)RedisKvBlockStoreFactory.Create("redis:127.0.0.1:1", settings,
            new RedisKvBlockStoreOptions { ConnectTimeout = TimeSpan.FromMilliseconds(100) })!;
        redis.KeyOf(BlockKey.For("m", [1])).Should().StartWith("blockattn:m:");
    }
}
