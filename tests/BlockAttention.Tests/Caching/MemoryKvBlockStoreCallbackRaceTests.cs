using BlockAttention.Caching;

namespace BlockAttention.Tests.Caching;

/// <summary>
/// MemoryCache reports evictions through callbacks on the thread pool, which race with the store's
/// own Remove, Clear and Dispose for the same entry. These tests hold a callback inside the window
/// between claiming an entry and subtracting its bytes, then call the store's method: the method
/// must not return until the callback's accounting is done, whatever the interleaving.
/// </summary>
public class MemoryKvBlockStoreCallbackRaceTests
{
    private static readonly long s_blockBytes = TestBlocks.SizeOf(4);

    [Theory]
    [InlineData("remove")]
    [InlineData("clear")]
    [InlineData("dispose")]
    public async Task A_store_method_returns_only_after_a_racing_eviction_callback_has_done_its_accounting(string how)
    {
        var clock = new ManualTimeProvider();
        var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions
        {
            MaxBytes = 4 * s_blockBytes,
            SlidingExpiration = TimeSpan.FromMinutes(1),
            TimeProvider = clock,
        });
        int[] tokens = TestBlocks.Tokens(1);
        var block = TestBlocks.Random(tokens);
        (await store.SetAsync(block)).Should().BeTrue();
        block.Release();
        var reader = await store.TryGetAsync(block.Key, tokens);
        reader.Should().NotBeNull();

        using var callbackClaimed = new ManualResetEventSlim();
        using var letCallbackFinish = new ManualResetEventSlim();
        store.AfterCallbackClaimedEntry = () =>
        {
            callbackClaimed.Set();
            letCallbackFinish.Wait(TimeSpan.FromSeconds(30));
        };

        // Expire the entry: the next lookup makes the cache drop it and queue its callback, which
        // claims the entry and then stalls in the hook, before subtracting the block's bytes.
        clock.Advance(TimeSpan.FromMinutes(2));
        (await store.TryGetAsync(block.Key, tokens)).Should().BeNull();
        callbackClaimed.Wait(TimeSpan.FromSeconds(30)).Should().BeTrue("the cache runs the eviction callback of an expired entry");

        // On a thread of its own: the thread pool may be slow to grow while the callback blocks one
        // of its threads, and a late start would let the callback finish first.
        Task<KvBlockStoreStatistics> storeCall = OnNewThread(() =>
        {
            switch (how)
            {
                case "remove":
                    store.RemoveAsync(block.Key).AsTask().GetAwaiter().GetResult();
                    break;
                case "clear":
                    store.Clear();
                    break;
                default:
                    store.Dispose();
                    break;
            }

            return store.Statistics; // read the moment the method returns
        });

        // A store whose method returned while the callback still stalled would show its counters
        // now, with the block still counted. Give it ample time to do so, then let the callback go.
        bool returnedWhileCallbackStalled = await Task.WhenAny(storeCall, Task.Delay(TimeSpan.FromMilliseconds(300))) == storeCall;
        letCallbackFinish.Set();
        KvBlockStoreStatistics statistics = await storeCall;

        returnedWhileCallbackStalled.Should().BeFalse($"{how} must wait for the callback that claimed the entry");
        statistics.Bytes.Should().Be(0, "the callback's accounting is done before the method returns");
        statistics.Entries.Should().Be(0);
        reader!.IsAlive.Should().BeTrue("the reader still holds its reference");
        reader.Release();
        reader.IsAlive.Should().BeFalse();
        store.Dispose();
    }

    private static Task<T> OnNewThread<T>(Func<T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                completion.SetResult(work());
            }
            catch (Exception e)
            {
                completion.SetException(e);
            }
        })
        { IsBackground = true };
        thread.Start();
        return completion.Task;
    }
}
