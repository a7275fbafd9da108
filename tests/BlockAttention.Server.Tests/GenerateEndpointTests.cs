using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using BlockAttention.Generation;
using BlockAttention.Prompts;

namespace BlockAttention.Server.Tests;

/// <summary>
/// POST /generate against the library itself as the oracle: the server must produce exactly what a
/// BlockSession produces for the prompt the reference would build (greedy, the reference's stop
/// strings, the text decoded with its special tokens).
/// </summary>
public sealed class GenerateEndpointTests : IClassFixture<GenerateEndpointTests.Server>, IDisposable
{
    private static readonly string[] s_blocks =
    [
        "<|user|>\nAnswer from the documents.\n\n",
        "- Title: Varnholm\nVarnholm is a small island in the northern Kessel Sea.\n",
        "- Title: Lunde\nThe harbour of Lunde was rebuilt in 1911.\n",
        "\n\nQuestion: When was the harbour rebuilt?\n<|assistant|>\n",
    ];

    private readonly HttpClient _client;

    public GenerateEndpointTests(Server server) => _client = server.CreateClient();

    /// <summary>A server whose generations are short, so that the comparisons run fast.</summary>
    public sealed class Server() : ServerFactory(new() { ["BlockAttentionServer:MaxNewTokens"] = "6" });

    [Theory]
    [InlineData(null)]
    [InlineData(10000)]
    [InlineData(2)]
    [InlineData(1)]
    [InlineData(0)]
    public async Task Generates_what_the_session_generates_for_the_reference_prompt(int? numLocalAttentionBlocks)
    {
        var response = await PostAsync(new { blocks = s_blocks, num_local_attention_blocks = numLocalAttentionBlocks });

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        var body = await ReadAsync(response);
        body.EnumerateObject().Select(p => p.Name).Should().Equal("ret", "generated", "message");
        body.GetProperty("ret").GetInt32().Should().Be(0);
        body.GetProperty("message").GetString().Should().BeEmpty();
        body.GetProperty("generated").GetString().Should().Be(await ExpectedAsync(numLocalAttentionBlocks));
    }

    [Fact]
    public async Task Repeated_passages_come_from_the_store()
    {
        // Blocks no other test sends, so that the first request finds none of them.
        var blocks = s_blocks.Select(b => b.Replace("\n", " (store test)\n", StringComparison.Ordinal)).ToArray();
        var first = await PostAsync(new { blocks });
        var second = await PostAsync(new { blocks });

        first.Headers.GetValues("X-BlockAttention-Blocks").Single().Should().Be("reused=0; encoded=3; local=3");
        second.Headers.GetValues("X-BlockAttention-Blocks").Single().Should().Be("reused=3; encoded=0; local=3");
        (await ReadAsync(second)).GetProperty("generated").GetString().Should().Be((await ReadAsync(first)).GetProperty("generated").GetString());
    }

    [Fact]
    public async Task Unknown_fields_are_ignored()
    {
        var response = await PostAsync(new { blocks = s_blocks, temperature = 0.7, extra = new { nested = true } });

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        (await ReadAsync(response)).GetProperty("generated").GetString().Should().Be(await ExpectedAsync(null));
    }

    [Theory]
    [InlineData("{\"blocks\": [\"a\", ", "not valid JSON")]
    [InlineData("", "the request body is empty")]
    [InlineData("null", "JSON null")]
    [InlineData("{}", "not valid JSON for this endpoint*blocks")]
    [InlineData("{\"blocks\": \"text\"}", "not valid JSON for this endpoint*")]
    [InlineData("{\"blocks\": []}", "'blocks' is empty*")]
    [InlineData("{\"blocks\": [\"a\", null]}", "blocks[1] is null")]
    [InlineData("{\"blocks\": [\"a\"], \"num_local_attention_blocks\": -1}", "'num_local_attention_blocks' must be 0 or more, got -1")]
    [InlineData("{\"blocks\": [\"a\"], \"num_local_attention_blocks\": \"2\"}", "not valid JSON for this endpoint*")]
    [InlineData("{\"blocks\": [\"a\", \"\"]}", "the final block is empty*")]
    public async Task A_bad_request_is_a_400_in_the_reference_envelope(string body, string message)
    {
        var response = await _client.PostAsync("/generate", new StringContent(body, Encoding.UTF8, "application/json"));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var envelope = await ReadAsync(response);
        envelope.GetProperty("ret").GetInt32().Should().Be(400);
        envelope.GetProperty("generated").GetString().Should().BeEmpty();
        envelope.GetProperty("message").GetString().Should().Match($"*{message}*");
    }

    public void Dispose() => _client.Dispose();

    private Task<HttpResponseMessage> PostAsync(object body) => _client.PostAsJsonAsync("/generate", body);

    private static async Task<JsonElement> ReadAsync(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

    /// <summary>The reference's prompt built by hand, run on a session of our own, decoded with special tokens.</summary>
    private static async Task<string> ExpectedAsync(int? n)
    {
        var model = Paths.Model;
        int limit = n ?? int.MaxValue;
        var local = s_blocks[..^1].Take(limit).ToList();
        string final = string.Concat(s_blocks[..^1].Skip(limit)) + s_blocks[^1];
        var prompt = local.Count == 0 ? BlockPrompt.FromBlocks(final) : BlockPrompt.FromBlocks([.. local, final]);
        using var session = new BlockSession(model);
        int endOfText = model.Tokenizer!.Encode("<|end_of_text|>").Single();
        var result = await session.GenerateAsync(prompt, new GenerationOptions
        {
            Mode = local.Count == 0 ? AttentionMode.Full : AttentionMode.Block,
            MaxNewTokens = 6,
            StopStrings = GenerationOptions.ReferenceStopStrings,
            StopTokenIds = [endOfText],
        });
        var ids = result.FinishReason == FinishReason.EndOfSequence ? [.. result.TokenIds, endOfText] : result.TokenIds.ToList();
        return model.Tokenizer.Decode(ids);
    }
}
