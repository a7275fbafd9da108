using BlockAttention.Attention;
using BlockAttention.Attention.Cuda;
using BlockAttention.Llama;
using BlockAttention.Tests.Caching;
using BlockAttention.Tests.Fixtures;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Attention;

/// <summary>Cached blocks attached in place to a request's cache, and the CPU's refusal to read them so.</summary>
public class KvPrefixTests
{
    [Fact]
    public void A_prefix_holds_a_reference_on_each_block_until_disposed()
    {
        var first = TestBlocks.Random(TestBlocks.Tokens(1, length: 3));
        var second = TestBlocks.Random(TestBlocks.Tokens(2, length: 5));

        var prefix = KvPrefix.Acquire([first, second]);
        first.Release();
        second.Release();

        first.IsAlive.Should().BeTrue("the prefix still references the block");
        prefix.Positions.Should().Be(8);
        prefix.OffsetOf(0).Should().Be(0);
        prefix.OffsetOf(1).Should().Be(3);

        prefix.Dispose();
        prefix.Dispose(); // a second dispose releases nothing more

        first.IsAlive.Should().BeFalse();
        second.IsAlive.Should().BeFalse();
    }

    [Fact]
    public void Acquiring_a_freed_block_fails_and_gives_back_the_references_taken()
    {
        var alive = TestBlocks.Random(TestBlocks.Tokens(1));
        var freed = TestBlocks.Random(TestBlocks.Tokens(2));
        freed.Release();

        var acquire = () => KvPrefix.Acquire([alive, freed]);

        acquire.Should().Throw<ObjectDisposedException>().WithMessage("*freed*");
        alive.Release();
        alive.IsAlive.Should().BeFalse("the reference taken before the failure was given back");
    }

    [Fact]
    public void A_cache_with_a_prefix_counts_its_positions_and_releases_the_blocks_when_emptied_or_disposed()
    {
        var block = TestBlocks.Random(TestBlocks.Tokens(1, length: 6));
        using (var cache = new KvCache(TestBlocks.Layers, TestBlocks.KvHeads, TestBlocks.HeadDim, 4, ScalarType.Float32, CPU))
        {
            cache.AttachPrefix(KvPrefix.Acquire([block]));
            cache.PrefixLength.Should().Be(6);
            cache.Length.Should().Be(0, "the cache's own positions follow the prefix");
            using (var second = KvPrefix.Acquire([block]))
            {
                cache.Invoking(c => c.AttachPrefix(second)).Should().Throw<InvalidOperationException>("the cache already has a prefix");
            }

            cache.Truncate(0);
            cache.Prefix.Should().BeNull();
            cache.AttachPrefix(KvPrefix.Acquire([block]));
        }

        block.Release();
        block.IsAlive.Should().BeFalse("disposing the cache released its prefix's reference");
    }

    [Fact]
    public void A_prefix_cannot_be_attached_to_a_cache_that_holds_positions()
    {
        var block = TestBlocks.Random(TestBlocks.Tokens(1));
        using var cache = new KvCache(TestBlocks.Layers, TestBlocks.KvHeads, TestBlocks.HeadDim, 4, ScalarType.Float32, CPU);
        cache.Advance(1);
        using var prefix = KvPrefix.Acquire([block]);

        cache.Invoking(c => c.AttachPrefix(prefix)).Should().Throw<InvalidOperationException>();
        block.Release();
    }

    [Fact]
    public void On_the_cpu_the_model_does_not_read_blocks_in_place_and_refuses_a_cache_with_a_prefix()
    {
        using var model = LlamaModel.Load(FixturePaths.Model("tiny-llama2"));
        model.CanAttendKvPrefix.Should().BeFalse();
        CudaKernels.TryGet(CPU, ScalarType.Float32, 64).Should().BeNull();

        var block = KvBlockFor(model, [1, 2, 3]);
        using var cache = model.CreateCache(4);
        cache.AttachPrefix(KvPrefix.Acquire([block]));
        block.Release();

        var forward = () => model.Forward([4], cache);

        forward.Should().Throw<ArgumentException>().WithMessage("*CanAttendKvPrefix*");
    }

    [Theory]
    [InlineData(ScalarType.Float32, 8, true, false)]
    [InlineData(ScalarType.BFloat16, 128, true, true)]
    [InlineData(ScalarType.Float16, 64, true, true)]
    [InlineData(ScalarType.BFloat16, 8, true, false)]
    [InlineData(ScalarType.Float32, 6, false, false)]
    [InlineData(ScalarType.Float32, 256, false, false)]
    [InlineData(ScalarType.Float64, 64, false, false)]
    public void Kernel_variants_exist_for_the_supported_types_and_head_sizes(ScalarType dtype, int headDim, bool kernels, bool tensorCores)
    {
        CudaKernels.Supports(dtype, headDim).Should().Be(kernels);
        CudaKernels.SupportsTensorCores(dtype, headDim).Should().Be(tensorCores);
    }

    private static BlockAttention.Caching.KvBlock KvBlockFor(LlamaModel model, int[] tokens) =>
        BlockAttention.Caching.KvBlock.Encode(model, tokens);
}
