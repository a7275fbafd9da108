using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace BlockAttention.Server.Tests;

/// <summary>
/// POST /v1/chat/completions over raw HTTP: the OpenAI wire format, the same text as the chat client
/// gives in-process, cached tokens from the store, and errors in OpenAI's envelope.
/// </summary>
public sealed class ChatCompletionsTests : IClassFixture<ChatCompletionsTests.Server>, IDisposable
{
    private readonly HttpClient _client;

    public ChatCompletionsTests(Server server) => _client = server.CreateClient();

    public sealed class Server() : ServerFactory(new() { ["BlockAttentionServer:MaxNewTokens"] = "16" });

    private static JsonObject Request(string tag, bool stream = false) => new()
    {
        ["model"] = "tiny-llama3",
        ["max_tokens"] = 5,
        ["stream"] = stream,
        ["stream_options"] = stream ? new JsonObject { ["include_usage"] = true } : null,
        ["some_future_field"] = "ignored",
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "system", ["content"] = ChatOracle.System },
            new JsonObject
            {
                ["role"] = "user",
                ["content"] = new JsonArray(
                    new JsonObject { ["type"] = "text", ["text"] = ChatOracle.FirstPassage(tag) },
                    new JsonObject { ["type"] = "text", ["text"] = ChatOracle.SecondPassage(tag) },
                    new JsonObject { ["type"] = "text", ["text"] = ChatOracle.Question }),
            }),
    };

    [Fact]
    public async Task Answers_as_the_chat_client_does_and_the_second_request_reads_the_passages_from_the_store()
    {
        var first = await PostAsync(Request("cache test"));
        var second = await PostAsync(Request("cache test"));

        first.Status.Should().Be(HttpStatusCode.OK, first.Body.ToJsonString());
        first.Body["object"]!.GetValue<string>().Should().Be("chat.completion");
        first.Body["model"]!.GetValue<string>().Should().Be("tiny-llama3");
        first.Body["id"]!.GetValue<string>().Should().StartWith("chatcmpl-");
        var choice = first.Body["choices"]!.AsArray().Single()!;
        choice["message"]!["role"]!.GetValue<string>().Should().Be("assistant");
        choice["finish_reason"]!.GetValue<string>().Should().BeOneOf("stop", "length");
        string text = choice["message"]!["content"]!.GetValue<string>();
        text.Should().Be(await ChatOracle.AnswerAsync("cache test"));
        second.Body["choices"]![0]!["message"]!["content"]!.GetValue<string>().Should().Be(text);

        // On repeat, every block but the final one (system turn, passages) comes from the store.
        long Cached(JsonNode body) => body["usage"]!["prompt_tokens_details"]!["cached_tokens"]!.GetValue<long>();
        Cached(second.Body).Should().Be(ChatOracle.LocalBlockTokens("cache test"));
        Cached(first.Body).Should().BeLessThan(Cached(second.Body), "the passages were new to the first request");
        var usage = second.Body["usage"]!;
        usage["prompt_tokens"]!.GetValue<long>().Should().Be(first.Body["usage"]!["prompt_tokens"]!.GetValue<long>());
        usage["total_tokens"]!.GetValue<long>().Should().Be(usage["prompt_tokens"]!.GetValue<long>() + usage["completion_tokens"]!.GetValue<long>());
        usage["completion_tokens"]!.GetValue<long>().Should().BeInRange(1, 5);
    }

    [Fact]
    public async Task Streams_server_sent_events_whose_deltas_add_up_to_the_answer()
    {
        using var response = await _client.PostAsync("/v1/chat/completions", Json(Request("stream test", stream: true)));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/event-stream");
        string body = await response.Content.ReadAsStringAsync();
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        events.Should().OnlyContain(e => e.StartsWith("data: ", StringComparison.Ordinal));
        events[^1].Should().Be("data: [DONE]");
        var chunks = events[..^1].Select(e => JsonNode.Parse(e["data: ".Length..])!).ToList();
        chunks.Should().OnlyContain(c => c["object"]!.GetValue<string>() == "chat.completion.chunk");
        chunks[0]["choices"]![0]!["delta"]!["role"]!.GetValue<string>().Should().Be("assistant");

        string streamed = string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0)
            .Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>() ?? ""));
        streamed.Should().Be(await ChatOracle.AnswerAsync("stream test"));
        chunks.Count(c => c["choices"]!.AsArray().Count > 0 && c["choices"]![0]!["finish_reason"] is not null).Should().Be(1);
        var usage = chunks[^1]["usage"]!;
        chunks[^1]["choices"]!.AsArray().Should().BeEmpty("the usage chunk comes last, with no choices, as OpenAI sends it");
        usage["completion_tokens"]!.GetValue<long>().Should().BeInRange(1, 5);
    }

    [Theory]
    [InlineData("{\"messages\": [", 400, null, "*not valid JSON*")]
    [InlineData("{\"messages\": []}", 400, "messages", "'messages' is empty*")]
    [InlineData("{\"model\": \"gpt-4o\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 404, "model", "The model 'gpt-4o' does not exist*")]
    [InlineData("{\"n\": 2, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "n", "'n' must be 1*")]
    [InlineData("{\"max_tokens\": 17, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "max_tokens",
        "'max_tokens' must be between 1 and 16 (BlockAttentionServer:MaxNewTokens), got 17")]
    [InlineData("{\"max_completion_tokens\": 0, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "max_completion_tokens", "*got 0")]
    [InlineData("{\"messages\": [{\"role\": \"tool\", \"content\": \"hi\"}]}", 400, "messages[0].role", "*'tool' is not supported*")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {}}]}]}", 400, "messages[0].content[0]",
        "*only text parts are supported")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}", 400, null, "*user*")]
    [InlineData("{\"stop\": 5, \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "stop", "'stop' must be*")]
    [InlineData("{\"tools\": [{\"type\": \"function\"}], \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", 400, "tools", "*not supported")]
    public async Task A_bad_request_gets_an_openai_error(string body, int status, string? param, string message)
    {
        var response = await PostAsync(body);

        ((int)response.Status).Should().Be(status, response.Body.ToJsonString());
        var error = response.Body["error"]!;
        error["type"]!.GetValue<string>().Should().Be("invalid_request_error");
        error["message"]!.GetValue<string>().Should().Match(message);
        if (param is not null)
        {
            error["param"]!.GetValue<string>().Should().Be(param);
        }
    }

    [Fact]
    public async Task Models_lists_the_served_model_and_health_reports_it()
    {
        var models = JsonNode.Parse(await _client.GetStringAsync("/v1/models"))!;
        models["object"]!.GetValue<string>().Should().Be("list");
        models["data"]![0]!["id"]!.GetValue<string>().Should().Be("tiny-llama3");
        models["data"]![0]!["object"]!.GetValue<string>().Should().Be("model");

        var health = await _client.GetAsync("/health");
        health.StatusCode.Should().Be(HttpStatusCode.OK);
        JsonNode.Parse(await health.Content.ReadAsStringAsync())!["status"]!.GetValue<string>().Should().Be("ok");
    }

    [Fact]
    public async Task Metrics_are_prometheus_text_with_the_server_counters()
    {
        (await PostAsync(Request("metrics test"))).Status.Should().Be(HttpStatusCode.OK);

        var response = await _client.GetAsync("/metrics");

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/plain");
        string text = await response.Content.ReadAsStringAsync();
        text.Should().MatchRegex(@"blockattention_server_requests_total\{[^}]*endpoint=""/v1/chat/completions""[^}]*outcome=""ok""[^}]*\} [1-9]");
        // The library's own meter, through the same exporter: TTFT histogram and reuse counters.
        text.Should().MatchRegex(@"blockattention_time_to_first_token\w*_count\{[^}]*\} [1-9]");
        text.Should().MatchRegex(@"blockattention_prompt_tokens\w*\{[^}]*\} [1-9]");
    }

    public void Dispose() => _client.Dispose();

    private static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    private async Task<(HttpStatusCode Status, JsonNode Body)> PostAsync(JsonNode body) => await PostAsync(body.ToJsonString());

    private async Task<(HttpStatusCode Status, JsonNode Body)> PostAsync(string body)
    {
        using var response = await _client.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"));
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }
}
