using System.ClientModel;
using System.Globalization;
using System.Text;
using BlockAttention.Caching;
using OpenAI;
using OpenAI.Chat;

namespace BlockAttention.Server.Tests;

/// <summary>
/// Many clients at once against the server on a real Kestrel: each streaming answer equals the
/// answer the same request gets alone, while their steps share forward passes; <c>/metrics</c>
/// shows the batches and the requests running and waiting.
/// </summary>
public sealed class ConcurrentClientsTests
{
    [Fact]
    public async Task Many_concurrent_streaming_clients_each_get_the_answer_they_get_alone()
    {
        const int clients = 24;
        const int maxTokens = 12;
        var expected = new string[clients];
        for (int i = 0; i < clients; i++)
        {
            expected[i] = await ChatOracle.AnswerAsync($"client {i}", maxTokens);
        }

        await using var server = await KestrelServer.StartAsync(new() { ["BlockAttention:MaxBatchSize"] = "16" });
        var chat = new ChatClient("tiny-llama3", new ApiKeyCredential("not-checked"),
            new OpenAIClientOptions { Endpoint = new Uri(server.Address, "/v1") });
        var options = new ChatCompletionOptions { MaxOutputTokenCount = maxTokens };
        using var start = new SemaphoreSlim(0);

        var answers = Enumerable.Range(0, clients).Select(i => Task.Run(async () =>
        {
            await start.WaitAsync();
            var text = new StringBuilder();
            await foreach (var update in chat.CompleteChatStreamingAsync(Messages($"client {i}"), options))
            {
                foreach (var part in update.ContentUpdate)
                {
                    text.Append(part.Text);
                }
            }

            return text.ToString();
        })).ToArray();
        start.Release(clients);
        var results = await Task.WhenAll(answers);

        for (int i = 0; i < clients; i++)
        {
            results[i].Should().Be(expected[i], $"client {i} must not depend on what ran beside it");
        }

        // 24 clients on 16 places: batches of more than one request (mean batch size above 1), nothing left running.
        using var http = new HttpClient { BaseAddress = server.Address };
        var metrics = Metrics.Parse(await http.GetStringAsync("/metrics"));
        double batches = metrics.Sum("blockattention_batch_size_count");
        batches.Should().BeGreaterThan(0, "every step is a batch");
        (metrics.Sum("blockattention_batch_size_sum") / batches).Should().BeGreaterThan(1, "concurrent requests share forward passes");
        metrics.Sum("blockattention_requests_active").Should().Be(0);
        metrics.Sum("blockattention_requests_queued").Should().Be(0);
    }

    [Fact]
    public async Task Metrics_show_the_requests_running_and_waiting_in_the_session()
    {
        // The session runs two and queues the rest; the server lets four in. The running two are held in their store lookups.
        var store = new QueueTests.GatedStore(new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 1L << 26 }));
        await using var server = await KestrelServer.StartAsync(
            new() { ["BlockAttention:MaxBatchSize"] = "2", ["BlockAttentionServer:MaxConcurrentRequests"] = "4", ["BlockAttentionServer:MaxNewTokens"] = "3" },
            _ => store);
        using var http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(2) };
        var requests = Enumerable.Range(0, 4)
            .Select(i => http.PostAsync("/generate", new StringContent($$"""{"blocks": ["Passage {{i}}.\n", "Question {{i}}?\n"]}""", Encoding.UTF8, "application/json")))
            .ToArray();
        await store.Entered.WaitAsync(TimeSpan.FromSeconds(60));
        await store.Entered.WaitAsync(TimeSpan.FromSeconds(60));

        // Until all four have arrived: two running (held), two waiting for a place.
        Metrics held = default;
        for (var deadline = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < deadline; await Task.Delay(400))
        {
            held = Metrics.Parse(await http.GetStringAsync("/metrics"));
            if (held.Sum("blockattention_requests_queued") == 2)
            {
                break;
            }
        }

        held.Sum("blockattention_requests_active").Should().Be(2);
        held.Sum("blockattention_requests_queued").Should().Be(2);

        store.Open();
        foreach (var response in await Task.WhenAll(requests))
        {
            response.EnsureSuccessStatusCode();
        }

        await Task.Delay(400); // past the exporter's scrape cache
        var done = Metrics.Parse(await http.GetStringAsync("/metrics"));
        done.Sum("blockattention_requests_active").Should().Be(0);
        done.Sum("blockattention_batch_size_count").Should().BeGreaterThan(0);
    }

    private static List<ChatMessage> Messages(string tag) =>
    [
        new SystemChatMessage(ChatOracle.System),
        new UserChatMessage(
            ChatMessageContentPart.CreateTextPart(ChatOracle.FirstPassage(tag)),
            ChatMessageContentPart.CreateTextPart(ChatOracle.SecondPassage(tag)),
            ChatMessageContentPart.CreateTextPart(ChatOracle.Question)),
    ];

    /// <summary>The samples of a Prometheus text exposition: metric name (without labels) and value.</summary>
    private readonly record struct Metrics(IReadOnlyList<(string Name, double Value)> Samples)
    {
        public static Metrics Parse(string text) => new([.. text.Split('\n')
            .Where(line => line.Length > 0 && line[0] != '#')
            .Select(line =>
            {
                int labels = line.IndexOf('{', StringComparison.Ordinal);
                int close = line.LastIndexOf('}');
                string name = labels < 0 ? line[..line.IndexOf(' ', StringComparison.Ordinal)] : line[..labels];
                string rest = (labels < 0 ? line[name.Length..] : line[(close + 1)..]).Trim();
                return (name, double.Parse(rest.Split(' ')[0], CultureInfo.InvariantCulture));
            })]);

        /// <summary>The sum over every label set of <paramref name="name"/>; fails when the exposition has no such metric.</summary>
        public double Sum(string name)
        {
            var values = (Samples ?? []).Where(s => s.Name == name).Select(s => s.Value).ToList();
            values.Should().NotBeEmpty($"/metrics must have {name}");
            return values.Sum();
        }
    }
}
