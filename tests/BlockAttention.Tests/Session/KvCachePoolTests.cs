using BlockAttention.Attention;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Session;

public class KvCachePoolTests
{
    [Fact]
    public void A_returned_cache_is_handed_out_again_empty()
    {
        using var pool = new KvCachePool(TestModels.Get("tiny-llama2"), maxIdle: 2);
        var first = pool.Rent(100);
        first.Advance(50);
        pool.Return(first);

        var second = pool.Rent(300);

        second.Should().BeSameAs(first, "1024 positions (rounded up) hold 300");
        second.Length.Should().Be(0);
        pool.Return(second);
    }

    [Fact]
    public void A_cache_more_than_twice_too_large_is_not_reused_and_idle_caches_are_bounded()
    {
        var model = TestModels.Get("tiny-llama2");
        using var pool = new KvCachePool(model, maxIdle: 1);
        var large = pool.Rent(4000);
        var small = pool.Rent(10);
        pool.Return(large);
        pool.Return(small); // only one idle cache is kept: the oldest (large) is freed

        var again = pool.Rent(10);

        again.Should().BeSameAs(small);
        large.Invoking(c => c.Advance(1)).Should().Throw<ObjectDisposedException>();
        pool.Return(again);
    }
}
