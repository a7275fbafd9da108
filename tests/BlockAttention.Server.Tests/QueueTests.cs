using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using BlockAttention.Caching;

namespace BlockAttention.Server.Tests;

/// <summary>
/// The bounded queue: with one request generating and one waiting, a third is refused at once with
/// 429 and Retry-After; once the first finishes, the waiting one runs. The first request is held
/// inside the pipeline by a block store whose lookups wait for the test to open a gate.
/// </summary>
public sealed class QueueTests
{
    [Theory]
    [InlineData("BlockAttentionServer:MaxConcurrentRequests", "BlockAttentionServer:MaxQueuedRequests")]
    [InlineData("BlockAttention:MaxBatchSize", "BlockAttention:MaxQueuedRequests")] // unset, the server's limits are the session's
    public async Task A_full_queue_answers_429_with_retry_after_and_the_others_complete(string running, string waiting)
    {
        var store = new GatedStore(new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 1L << 26 }));
        using var server = new ServerFactory(
            new() { [running] = "1", [waiting] = "1", ["BlockAttentionServer:RetryAfterSeconds"] = "7", ["BlockAttentionServer:MaxNewTokens"] = "2" },
            _ => store);
        using var client = server.CreateClient();
        object body = new { blocks = new[] { "A passage.\n", "A question?\n" } };

        var holding = client.PostAsJsonAsync("/generate", body);
        await store.Entered.WaitAsync(TimeSpan.FromSeconds(60));
        // The first request holds the only slot; of the next two, one waits in the queue and one is refused.
        var second = client.PostAsJsonAsync("/generate", body);
        var third = client.PostAsJsonAsync("/generate", body);
        var refused = await Task.WhenAny(second, third);
        var rejected = await refused;

        rejected.StatusCode.Should().Be(HttpStatusCode.TooManyRequests);
        rejected.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(7));
        var envelope = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync()).RootElement;
        envelope.GetProperty("ret").GetInt32().Should().Be(429);
        envelope.GetProperty("message").GetString().Should().StartWith("the server is busy");

        store.Open();
        (await holding).StatusCode.Should().Be(HttpStatusCode.OK);
        (await (refused == second ? third : second)).StatusCode.Should().Be(HttpStatusCode.OK, "the queued request runs once the slot is free");
    }

    [Fact]
    public async Task A_session_that_refuses_a_request_is_a_503_with_retry_after()
    {
        // The server lets two requests in, the session runs one and queues none: the second is the session's to refuse.
        var store = new GatedStore(new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 1L << 26 }));
        using var server = new ServerFactory(
            new()
            {
                ["BlockAttentionServer:MaxConcurrentRequests"] = "2", ["BlockAttention:MaxBatchSize"] = "1", ["BlockAttention:MaxQueuedRequests"] = "0",
                ["BlockAttentionServer:RetryAfterSeconds"] = "5", ["BlockAttentionServer:MaxNewTokens"] = "2",
            },
            _ => store);
        using var client = server.CreateClient();
        object body = new { blocks = new[] { "A passage.\n", "A question?\n" } };

        var holding = client.PostAsJsonAsync("/generate", body);
        await store.Entered.WaitAsync(TimeSpan.FromSeconds(60));
        var refused = await client.PostAsJsonAsync("/v1/chat/completions", new { messages = new[] { new { role = "user", content = "Hello?" } } });

        refused.StatusCode.Should().Be(HttpStatusCode.ServiceUnavailable);
        refused.Headers.RetryAfter!.Delta.Should().Be(TimeSpan.FromSeconds(5));
        var error = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        error.GetProperty("code").GetString().Should().Be("session_busy");
        error.GetProperty("message").GetString().Should().Contain("retry after 5 s");

        store.Open();
        (await holding).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    /// <summary>A real store whose lookups wait until <see cref="Open"/>; <see cref="Entered"/> is released at the first lookup.</summary>
    internal sealed class GatedStore(IKvBlockStore inner) : IKvBlockStore
    {
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public SemaphoreSlim Entered { get; } = new(0);

        public KvBlockStoreStatistics Statistics => inner.Statistics;

        public void Open() => _gate.TrySetResult();

        public async ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default)
        {
            if (!_gate.Task.IsCompleted)
            {
                Entered.Release();
                await _gate.Task.WaitAsync(cancellationToken);
            }

            return await inner.TryGetAsync(key, tokens, cancellationToken);
        }

        public ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default) => inner.SetAsync(block, cancellationToken);

        public ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default) => inner.RemoveAsync(key, cancellationToken);
    }
}
