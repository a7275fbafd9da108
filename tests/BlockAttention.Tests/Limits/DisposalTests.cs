using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Llama;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Limits;

/// <summary>
/// Disposing the model, the session or the store while requests run: every request ends with a
/// result or with <see cref="ObjectDisposedException"/>, never a native error, and whatever it
/// held is freed.
/// </summary>
public class DisposalTests
{
    private static readonly GenerationOptions s_long = new() { MaxNewTokens = 400, StopStrings = [], StopTokenIds = [] };

    [Fact]
    public async Task Disposing_the_model_during_forward_passes_on_other_threads_gives_only_ObjectDisposedException()
    {
        for (int round = 0; round < 5; round++)
        {
            var model = TinyRandomModels.Create(maxPositions: 4096, seed: round);
            using var started = new CountdownEvent(3);
            var workers = Enumerable.Range(0, 3).Select(w => Task.Run(() => ForwardUntilDisposed(model, w, started))).ToArray();
            started.Wait(TimeSpan.FromSeconds(30)).Should().BeTrue();

            model.Dispose();

            foreach (var outcome in await Task.WhenAll(workers))
            {
                outcome.Should().BeOfType<ObjectDisposedException>($"round {round}: a forward pass racing Dispose either completes or reports the disposal");
            }
        }
    }

    [Fact]
    public async Task Disposing_the_model_while_requests_stream_ends_them_with_ObjectDisposedException_or_a_result()
    {
        for (int round = 0; round < 3; round++)
        {
            var model = TinyRandomModels.Create(maxPositions: 4096, seed: round);
            using var session = new BlockSession(model);
            using var streaming = new CountdownEvent(4);
            var requests = Enumerable.Range(0, 4).Select(i => Task.Run(() => Consume(session, Prompt(i), s_long with { Mode = (AttentionMode)(i % 3) }, streaming))).ToArray();
            streaming.Wait(TimeSpan.FromSeconds(30)).Should().BeTrue();

            model.Dispose();

            foreach (var outcome in await Task.WhenAll(requests))
            {
                outcome.Should().Match<object?>(o => o is GenerationResult || o is ObjectDisposedException, $"round {round}: got {outcome}");
            }

            var after = () => session.GenerateAsync(Prompt(9), s_long);
            await after.Should().ThrowAsync<ObjectDisposedException>();
        }
    }

    [Fact]
    public async Task Disposing_the_session_ends_its_requests_and_refuses_new_ones_but_the_model_goes_on()
    {
        using var model = TinyRandomModels.Create(maxPositions: 4096);
        var session = new BlockSession(model);
        using var streaming = new CountdownEvent(3);
        var requests = Enumerable.Range(0, 3).Select(i => Task.Run(() => Consume(session, Prompt(i), s_long, streaming))).ToArray();
        streaming.Wait(TimeSpan.FromSeconds(30)).Should().BeTrue();

        session.Dispose();

        foreach (var outcome in await Task.WhenAll(requests))
        {
            outcome.Should().Match<object?>(o => o is GenerationResult || o is ObjectDisposedException, $"got {outcome}");
        }

        var refused = () => session.GenerateAsync(Prompt(5), s_long);
        await refused.Should().ThrowAsync<ObjectDisposedException>();
        using var other = new BlockSession(model);
        (await other.GenerateAsync(Prompt(5), s_long with { MaxNewTokens = 3 })).TokenIds.Should().HaveCount(3);
    }

    [Fact]
    public async Task A_request_failing_because_the_store_was_disposed_frees_the_block_it_encoded()
    {
        using var model = TinyRandomModels.Create();
        var store = new DisposedOnFirstSet(new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 }));
        using var session = new BlockSession(model, store);

        var act = () => session.GenerateAsync(Prompt(1), s_long);

        await act.Should().ThrowAsync<ObjectDisposedException>();
        store.Offered.Should().NotBeNull("the block was encoded and offered to the store");
        store.Offered!.IsAlive.Should().BeFalse("the request released its reference, and the store never took one");
    }

    [Fact]
    public void A_disposed_model_refuses_new_work_and_keeps_no_tables()
    {
        var model = TinyRandomModels.Create();
        model.Dispose();

        model.Invoking(m => m.CreateCache(4)).Should().Throw<ObjectDisposedException>();
        model.Invoking(m => m.Rotary.Angles(0, 4, TorchSharp.torch.CPU)).Should().Throw<ObjectDisposedException>("a table rebuilt now would never be freed");
        model.Invoking(m => m.Dispose()).Should().NotThrow();
    }

    internal static BlockPrompt Prompt(int seed) =>
        BlockPrompt.FromTokenizedBlocks([TinyRandomModels.Tokens(60, seed), TinyRandomModels.Tokens(40, seed + 100), TinyRandomModels.Tokens(8, seed + 200)]);

    /// <summary>Runs forward passes until one fails; returns that exception.</summary>
    internal static Exception ForwardUntilDisposed(LlamaModel model, int seed, CountdownEvent started)
    {
        bool signalled = false;
        int[] tokens = TinyRandomModels.Tokens(64, seed);
        try
        {
            while (true)
            {
                using var cache = model.CreateCache(65);
                using (model.Forward(tokens, cache, logitsToKeep: 0))
                using (var logits = model.Forward([tokens[0]], cache))
                {
                }

                if (!signalled)
                {
                    started.Signal();
                    signalled = true;
                }
            }
        }
        catch (Exception e)
        {
            if (!signalled)
            {
                started.Signal();
            }

            return e;
        }
    }

    /// <summary>Streams a request to its end; returns its result or the exception it ended with.</summary>
    internal static async Task<object?> Consume(BlockSession session, BlockPrompt prompt, GenerationOptions options, CountdownEvent streaming)
    {
        bool signalled = false;
        try
        {
            GenerationResult? result = null;
            await foreach (var chunk in session.StreamAsync(prompt, options))
            {
                if (!signalled)
                {
                    streaming.Signal();
                    signalled = true;
                }

                result = chunk.Result ?? result;
            }

            return result;
        }
        catch (Exception e)
        {
            return e;
        }
        finally
        {
            if (!signalled)
            {
                streaming.Signal();
            }
        }
    }

    /// <summary>A real store that is disposed the moment a request offers it a block, as when the application shuts it down mid-request.</summary>
    internal sealed class DisposedOnFirstSet(MemoryKvBlockStore inner) : IKvBlockStore
    {
        public KvBlock? Offered { get; private set; }

        public KvBlockStoreStatistics Statistics => inner.Statistics;

        public ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default) =>
            inner.TryGetAsync(key, tokens, cancellationToken);

        public ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default)
        {
            Offered ??= block;
            inner.Dispose();
            return inner.SetAsync(block, cancellationToken);
        }

        public ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default) => inner.RemoveAsync(key, cancellationToken);
    }
}
