using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Session;

/// <summary>
/// Continuous batching in <see cref="BlockSession"/>: many requests at once, of different lengths,
/// modes and stop conditions, each get exactly the tokens they get alone, while their steps share
/// forward passes; cancellation, queue and memory bounds.
/// </summary>
public class BatchingTests
{
    private static readonly RagPassage[] s_passages = [.. Enumerable.Range(0, 6)
        .Select(i => new RagPassage($"Passage {i}", $"Fact {i}: the {i}th river flows {i * 7} kilometres north of town {i}, past {i + 2} mills."))];

    /// <summary>Options shared by the batched session and the sessions that run each request alone: only the concurrency differs.</summary>
    private static BlockSessionOptions Batched(BatchSizeProbe? probe = null) => new() { MaxBatchSize = 16, PrefillChunkTokens = 8, MeterFactory = probe };

    [Fact]
    public async Task Many_concurrent_requests_get_exactly_the_tokens_they_get_alone()
    {
        var model = TestModels.Get("tiny-llama3");
        var random = new Random(5);
        var requests = Enumerable.Range(0, 24).Select(i => (Prompt: Prompt(random, i), Options: Options(i))).ToList();

        var alone = new List<GenerationResult>();
        foreach (var (prompt, options) in requests)
        {
            using var session = new BlockSession(model, null, Batched());
            alone.Add(await session.GenerateAsync(prompt, options));
        }

        using var probe = new BatchSizeProbe();
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });
        using var shared = new BlockSession(model, store, Batched(probe));
        var results = await Task.WhenAll(requests.Select(r => Task.Run(() => shared.GenerateAsync(r.Prompt, r.Options))));

        for (int i = 0; i < requests.Count; i++)
        {
            results[i].TokenIds.Should().Equal(alone[i].TokenIds, $"request {i} ({requests[i].Options.Mode}) must not depend on what ran beside it");
            results[i].Text.Should().Be(alone[i].Text);
            results[i].FinishReason.Should().Be(alone[i].FinishReason);
        }

        results.Select(r => r.FinishReason).Distinct().Should().HaveCountGreaterThan(1, "the requests end for different reasons");
        probe.Sizes.Max().Should().BeGreaterThan(4, "the steps of concurrent requests are meant to share forward passes");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-2)]
    public void StepThreads_must_be_positive(int threads)
    {
        var model = TestModels.Get("tiny-llama3");

        var act = () => new BlockSession(model, null, new BlockSessionOptions { StepThreads = threads });

        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*StepThreads*");
    }

    [Fact]
    public async Task A_session_on_one_step_thread_gives_the_tokens_of_the_default_threads()
    {
        // One thread changes how libtorch splits the work, not what a row of a whole GEMM tile computes.
        var model = TestModels.Get("tiny-llama3");
        var random = new Random(13);
        var prompt = Prompt(random, 0);
        var options = new GenerationOptions { MaxNewTokens = 12, StopStrings = [], StopTokenIds = [] };
        using var defaultThreads = new BlockSession(model, null, Batched());
        using var oneThread = new BlockSession(model, null, Batched() with { StepThreads = 1 });

        var expected = await defaultThreads.GenerateAsync(prompt, options);
        var actual = await oneThread.GenerateAsync(prompt, options);

        actual.TokenIds.Should().Equal(expected.TokenIds);
    }

    [Fact]
    public async Task Cancelling_one_request_mid_batch_leaves_the_others_exact()
    {
        var model = TestModels.Get("tiny-llama3");
        var random = new Random(9);
        var prompts = Enumerable.Range(0, 8).Select(i => Prompt(random, i)).ToList();
        var options = new GenerationOptions { MaxNewTokens = 24, StopStrings = [], StopTokenIds = [] };
        var alone = new List<IReadOnlyList<int>>();
        foreach (var prompt in prompts)
        {
            using var session = new BlockSession(model, null, Batched());
            alone.Add((await session.GenerateAsync(prompt, options)).TokenIds);
        }

        using var shared = new BlockSession(model, null, Batched());
        using var cancel = new CancellationTokenSource();
        var cancelled = Task.Run(async () =>
        {
            int seen = 0;
            await foreach (var chunk in shared.StreamAsync(prompts[0], options, cancel.Token))
            {
                if (++seen == 5)
                {
                    cancel.Cancel();
                }
            }
        });
        var abandoned = Task.Run(async () =>
        {
            int seen = 0;
            await foreach (var chunk in shared.StreamAsync(prompts[1], options))
            {
                if (++seen == 3)
                {
                    break; // the caller stops reading: its pending step must not outlive its cache
                }
            }

            return seen;
        });
        var others = Enumerable.Range(2, 6).Select(i => Task.Run(() => shared.GenerateAsync(prompts[i], options))).ToArray();

        await cancelled.Invoking(t => t).Should().ThrowAsync<OperationCanceledException>();
        (await abandoned).Should().Be(3);
        var results = await Task.WhenAll(others);
        for (int i = 0; i < results.Length; i++)
        {
            results[i].TokenIds.Should().Equal(alone[i + 2], $"request {i + 2} beside a cancelled and an abandoned one");
        }

        // The session goes on serving, exactly.
        (await shared.GenerateAsync(prompts[0], options)).TokenIds.Should().Equal(alone[0]);
    }

    [Fact]
    public async Task Requests_beyond_the_batch_wait_their_turn_and_beyond_the_queue_are_refused()
    {
        var model = TestModels.Get("tiny-llama3");
        using var session = new BlockSession(model, null, new BlockSessionOptions { MaxBatchSize = 1, MaxQueuedRequests = 1 });
        var options = new GenerationOptions { MaxNewTokens = 4, StopStrings = [], StopTokenIds = [] };
        var prompt = Prompt(new Random(1), 0);

        // The first request holds the one place while its caller reads nothing more.
        await using var first = session.StreamAsync(prompt, options).GetAsyncEnumerator();
        (await first.MoveNextAsync()).Should().BeTrue();
        var second = Task.Run(() => session.GenerateAsync(prompt, options));
        await WaitUntil(() => Queued(session) == 1);

        var third = () => session.GenerateAsync(prompt, options);
        await third.Should().ThrowAsync<SessionBusyException>().WithMessage("*MaxQueuedRequests = 1*");
        await Task.Delay(50);
        second.IsCompleted.Should().BeFalse("one request runs at a time");

        while (await first.MoveNextAsync())
        {
        }

        (await second).TokenIds.Should().HaveCount(4);
    }

    [Fact]
    public async Task A_request_waits_for_cache_memory_and_one_that_never_fits_fails_clearly()
    {
        var model = TestModels.Get("tiny-llama3");
        long oneCache = 1024 * model.Info.KvBytesPerToken; // caches are rounded up to 1024 positions
        using var session = new BlockSession(model, null, new BlockSessionOptions { MaxCacheBytes = oneCache, IdleCaches = 0 });
        var options = new GenerationOptions { MaxNewTokens = 4, StopStrings = [], StopTokenIds = [] };
        var prompt = Prompt(new Random(2), 0);

        await using var first = session.StreamAsync(prompt, options).GetAsyncEnumerator();
        (await first.MoveNextAsync()).Should().BeTrue();
        var second = Task.Run(() => session.GenerateAsync(prompt, options));
        await Task.Delay(100);
        second.IsCompleted.Should().BeFalse("the bound leaves room for one cache only");
        while (await first.MoveNextAsync())
        {
        }

        (await second).TokenIds.Should().HaveCount(4);

        var tooLong = () => session.GenerateAsync(prompt, options with { MaxNewTokens = 1500 });
        await tooLong.Should().ThrowAsync<ArgumentException>().WithMessage("*MaxCacheBytes*");
    }

    private static int Queued(BlockSession session) => session.QueuedRequests;

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (int i = 0; i < 500 && !condition(); i++)
        {
            await Task.Delay(10);
        }

        condition().Should().BeTrue();
    }

    /// <summary>A RAG prompt over some of the passages and a question of varying length: prompts of different lengths.</summary>
    private static BlockPrompt Prompt(Random random, int index) =>
        BlockPrompt.ForRag(s_passages.OrderBy(_ => random.Next()).Take(random.Next(1, 5)).ToArray(),
            $"Question {index}: which river{string.Concat(Enumerable.Repeat(" and then which town", random.Next(0, 6)))}?");

    /// <summary>Modes, lengths, sampling and stop conditions that differ from request to request.</summary>
    private static GenerationOptions Options(int index)
    {
        var mode = (index % 5) switch { 3 => AttentionMode.Full, 4 => AttentionMode.BlockOnePass, _ => AttentionMode.Block };
        var options = new GenerationOptions { Mode = mode, MaxNewTokens = 3 + index % 7 * 4, StopStrings = [], StopTokenIds = [] };
        return (index % 4) switch
        {
            1 => options with { Temperature = 0.9f, TopK = 40, Seed = index },
            2 => options with { StopStrings = ["e", "a"] },
            3 => options with { StopTokenIds = [.. Enumerable.Range(0, 2000)] },
            _ => options,
        };
    }
}
