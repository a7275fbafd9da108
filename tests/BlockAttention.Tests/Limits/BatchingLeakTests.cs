using System.Runtime;
using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Limits;

/// <summary>
/// Many batched requests leave no tensor behind: after rounds of concurrent requests (some
/// cancelled mid-batch), TorchSharp's count of live tensors is where it was after the first round,
/// with the garbage collector kept from running meanwhile, so nothing was left to finalizers.
/// </summary>
[Collection(nameof(LiveTensorCounting))]
public class BatchingLeakTests
{
    [Fact]
    public async Task Rounds_of_batched_requests_keep_the_live_tensor_count_flat()
    {
        using var model = TinyRandomModels.Create(maxPositions: 2048, seed: 3);
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });
        using var session = new BlockSession(model, store, new BlockSessionOptions { MaxBatchSize = 8, PrefillChunkTokens = 16, IdleCaches = 8 });
        await RoundAsync(session, 0); // warm: the store holds the passages, the pool its idle caches
        long before = DisposalLeakTests.SettledTensorCount();
        bool noCollections = GC.TryStartNoGCRegion(200_000_000);
        try
        {
            for (int round = 1; round <= 5; round++)
            {
                await RoundAsync(session, round);
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

    /// <summary>Twelve requests at once over the same passages, two of them cancelled while decoding.</summary>
    private static async Task RoundAsync(BlockSession session, int round)
    {
        var passages = Enumerable.Range(0, 4).Select(i => TinyRandomModels.Tokens(40, seed: i)).ToArray();
        var tasks = Enumerable.Range(0, 12).Select(i => Task.Run(async () =>
        {
            var prompt = BlockPrompt.FromTokenizedBlocks([.. passages, TinyRandomModels.Tokens(5 + i * 3, seed: 1000 * round + i)]);
            var options = new GenerationOptions { MaxNewTokens = 10 + i, StopStrings = [], StopTokenIds = [], Mode = i % 6 == 5 ? AttentionMode.Full : AttentionMode.Block };
            using var cancel = new CancellationTokenSource();
            int seen = 0;
            try
            {
                await foreach (var chunk in session.StreamAsync(prompt, options, cancel.Token))
                {
                    if (i % 5 == 4 && ++seen == 4)
                    {
                        cancel.Cancel();
                    }
                }
            }
            catch (OperationCanceledException) when (i % 5 == 4)
            {
            }
        })).ToArray();
        await Task.WhenAll(tasks);
    }
}
