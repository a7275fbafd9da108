using System.Runtime;
using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Tests.Fixtures;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Limits;

/// <summary>Runs alone: it counts every live TorchSharp tensor in the process.</summary>
[CollectionDefinition(nameof(LiveTensorCounting), DisableParallelization = true)]
public sealed class LiveTensorCounting;

/// <summary>
/// After disposals that race running requests, every tensor the requests, the session, the store
/// and the model made is freed by them, none left to the finalizer: TorchSharp's count of live
/// tensors is back where it started, with the garbage collector kept from running meanwhile.
/// </summary>
[Collection(nameof(LiveTensorCounting))]
public class DisposalLeakTests
{
    [Fact]
    public async Task Disposals_racing_requests_leave_no_tensor_behind()
    {
        long before = SettledTensorCount();
        bool noCollections = GC.TryStartNoGCRegion(200_000_000);
        try
        {
            // The model disposed under streaming requests, in every mode.
            var model = TinyRandomModels.Create(maxPositions: 4096, seed: 1);
            var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });
            var session = new BlockSession(model, store);
            using (var streaming = new CountdownEvent(3))
            {
                var requests = Enumerable.Range(0, 3)
                    .Select(i => Task.Run(() => DisposalTests.Consume(session, DisposalTests.Prompt(i), Options((AttentionMode)i), streaming))).ToArray();
                streaming.Wait(TimeSpan.FromSeconds(30)).Should().BeTrue();
                model.Dispose();
                await Task.WhenAll(requests);
            }

            session.Dispose();
            store.Dispose();

            // The store disposed as a request offers it a block.
            using (var model2 = TinyRandomModels.Create(seed: 2))
            using (var session2 = new BlockSession(model2, new DisposalTests.DisposedOnFirstSet(new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 }))))
            {
                var failed = await DisposalTests.Consume(session2, DisposalTests.Prompt(3), Options(AttentionMode.Block), new CountdownEvent(1));
                failed.Should().BeOfType<ObjectDisposedException>();
            }

            long after = Tensor.TotalCount;
            after.Should().Be(before, noCollections ? "no collection ran, so no finalizer freed a tensor meanwhile" : "(the runtime refused a no-GC region)");
        }
        finally
        {
            if (noCollections && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
            {
                GC.EndNoGCRegion();
            }
        }
    }

    private static GenerationOptions Options(AttentionMode mode) => new() { Mode = mode, MaxNewTokens = 300, StopStrings = [], StopTokenIds = [] };

    /// <summary>
    /// The live tensor count once earlier tests' garbage is finalized and their stores' background
    /// eviction callbacks have run: it must not move during the count for another reason.
    /// </summary>
    internal static long SettledTensorCount()
    {
        long count = -1;
        for (int attempt = 0; attempt < 20; attempt++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
            long now = Tensor.TotalCount;
            if (now == count)
            {
                break;
            }

            count = now;
            Thread.Sleep(100);
        }

        return count;
    }
}
