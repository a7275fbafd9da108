using BlockAttention.Caching;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Caching;

public class KvBlockTests
{
    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public void SizeInBytes_is_keys_plus_values_exactly(ScalarType dtype)
    {
        var block = TestBlocks.Random(TestBlocks.Tokens(1, length: 3), dtype);

        block.SizeInBytes.Should().Be(TestBlocks.SizeOf(3, dtype));
        block.SizeInBytes.Should().Be(2 * block.Keys.NumberOfElements * block.Keys.ElementSize);
        block.Release();
    }

    [Fact]
    public void Tensors_are_freed_only_by_the_last_release()
    {
        var block = TestBlocks.Random(TestBlocks.Tokens(1));
        Tensor keys = block.Keys;
        Tensor values = block.Values;

        block.TryAcquire().Should().BeTrue();
        block.Release();
        block.IsAlive.Should().BeTrue("the creator's reference is still held");
        keys.IsInvalid.Should().BeFalse();

        block.Release();

        block.IsAlive.Should().BeFalse();
        keys.IsInvalid.Should().BeTrue("the last release disposes the keys");
        values.IsInvalid.Should().BeTrue("and the values");
        block.Invoking(b => b.Keys).Should().Throw<ObjectDisposedException>();
        block.Invoking(b => b.Values).Should().Throw<ObjectDisposedException>();
        block.TryAcquire().Should().BeFalse("a freed block cannot be revived");
        block.Invoking(b => b.Release()).Should().Throw<InvalidOperationException>().WithMessage("*released more often than acquired*");
    }

    [Fact]
    public void Encodes_compares_the_tokens_not_the_key()
    {
        int[] tokens = TestBlocks.Tokens(1);
        var block = TestBlocks.Random(tokens);

        block.Encodes(tokens).Should().BeTrue();
        block.Encodes(TestBlocks.Tokens(2)).Should().BeFalse();
        block.Encodes(tokens.AsSpan(0, 3)).Should().BeFalse();
        block.Release();
    }

    [Fact]
    public void Constructor_rejects_tensors_that_do_not_match_the_tokens()
    {
        int[] tokens = TestBlocks.Tokens(1, length: 4);
        using var keys = randn(2, 2, 5, 8);
        using var values = randn(2, 2, 5, 8);

        var act = () => new KvBlock(BlockKey.For(TestBlocks.Fingerprint, tokens), tokens, keys, values);

        act.Should().Throw<ArgumentException>().WithMessage("*4 tokens*");
    }
}
