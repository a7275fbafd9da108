using System.ClientModel;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using OpenAI;
using OpenAI.Chat;

namespace BlockAttention.Server.Tests;

/// <summary>
/// The official OpenAI .NET client against the server on a real Kestrel (127.0.0.1, a free port):
/// existing OpenAI code works unchanged, streaming and not. Also: a client that disconnects in the
/// middle of a stream cancels its generation.
/// </summary>
public sealed class OpenAIClientTests
{
    [Fact]
    public async Task The_openai_client_completes_and_streams_with_cached_tokens_on_repeat()
    {
        await using var server = await KestrelServer.StartAsync();
        var client = new ChatClient("tiny-llama3", new ApiKeyCredential("not-checked"),
            new OpenAIClientOptions { Endpoint = new Uri(server.Address, "/v1") });
        List<ChatMessage> messages =
        [
            new SystemChatMessage(ChatOracle.System),
            new UserChatMessage(
                ChatMessageContentPart.CreateTextPart(ChatOracle.FirstPassage("openai client")),
                ChatMessageContentPart.CreateTextPart(ChatOracle.SecondPassage("openai client")),
                ChatMessageContentPart.CreateTextPart(ChatOracle.Question)),
        ];
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 5 };
        string expected = await ChatOracle.AnswerAsync("openai client");

        ChatCompletion completion = await client.CompleteChatAsync(messages, options);

        completion.Content.Single().Text.Should().Be(expected);
        completion.Role.Should().Be(ChatMessageRole.Assistant);
        completion.Model.Should().Be("tiny-llama3");
        completion.Usage.OutputTokenCount.Should().BeInRange(1, 5);
        int firstCached = completion.Usage.InputTokenDetails.CachedTokenCount;

        var streamed = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync(messages, options))
        {
            foreach (var part in update.ContentUpdate)
            {
                streamed.Append(part.Text);
            }

            usage = update.Usage ?? usage;
            finish = update.FinishReason ?? finish;
        }

        streamed.ToString().Should().Be(expected);
        finish.Should().Be(completion.FinishReason);
        usage.Should().NotBeNull("the OpenAI client asks for usage in streams, and the server sends it");
        usage!.InputTokenCount.Should().Be(completion.Usage.InputTokenCount);
        usage.InputTokenDetails.CachedTokenCount.Should().BeGreaterThan(firstCached, "the passages were stored by the first request");
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_cancels_its_generation()
    {
        await using var server = await KestrelServer.StartAsync(new() { ["BlockAttentionServer:MaxNewTokens"] = "2048" });
        // No draining of the unread response on dispose: the connection closes at once, as a client that goes away.
        using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = server.Address };
        var body = new JsonObject
        {
            ["stream"] = true,
            ["max_tokens"] = 2048,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Tell me a very long story about the island." }),
        };
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent(body.ToJsonString(), Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        })
        using (var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            (await reader.ReadLineAsync()).Should().StartWith("data: ", "the stream has begun");
        }

        // The server notices the closed connection and its generation ends cancelled, not finished.
        string metrics = "";
        for (var wait = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < wait; await Task.Delay(100))
        {
            metrics = await http.GetStringAsync("/metrics");
            if (metrics.Contains("outcome=\"cancelled\"", StringComparison.Ordinal) || metrics.Contains("outcome=\"ok\"", StringComparison.Ordinal))
            {
                break;
            }
        }

        metrics.Should().MatchRegex(@"blockattention_server_requests_total\{[^}]*endpoint=""/v1/chat/completions""[^}]*outcome=""cancelled""[^}]*\} 1");
        metrics.Should().NotContain("outcome=\"ok\"");
    }
}
