using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace BlockAttention.Server.Tests;

/// <summary>Each limit is a clear 4xx JSON error naming the limit, in the envelope of the endpoint.</summary>
public sealed class LimitsTests : IClassFixture<LimitsTests.Server>
{
    private readonly Server _server;

    public LimitsTests(Server server) => _server = server;

    public sealed class Server() : ServerFactory(new()
    {
        ["BlockAttentionServer:MaxBlocks"] = "3",
        ["BlockAttentionServer:MaxBlockTokens"] = "8",
        ["BlockAttentionServer:MaxRequestBodyBytes"] = "2048",
        ["BlockAttentionServer:MaxNewTokens"] = "4",
    });

    [Fact]
    public async Task Too_many_blocks()
    {
        var (status, message) = await GenerateAsync(new { blocks = new[] { "a", "b", "c", "d" } });

        status.Should().Be(HttpStatusCode.BadRequest);
        message.Should().Be("the request has 4 blocks, more than the limit of 3 (BlockAttentionServer:MaxBlocks)");
    }

    [Fact]
    public async Task A_block_with_too_many_tokens()
    {
        var (status, message) = await GenerateAsync(new { blocks = new[] { "short", "one two three four five six seven eight nine ten" } });

        status.Should().Be(HttpStatusCode.BadRequest);
        message.Should().MatchRegex(@"^blocks\[1\] has \d+ tokens, more than the limit of 8 per block \(BlockAttentionServer:MaxBlockTokens\)$");
    }

    [Fact]
    public async Task A_body_larger_than_the_limit_is_413()
    {
        var (status, message) = await GenerateAsync(new { blocks = new[] { new string('x', 3000) } });

        status.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        message.Should().Be("the request body is larger than the limit of 2048 bytes (BlockAttentionServer:MaxRequestBodyBytes)");
    }

    [Fact]
    public async Task Generate_stops_at_the_configured_number_of_new_tokens()
    {
        using var client = _server.CreateClient();
        var response = await client.PostAsJsonAsync("/generate", new { blocks = new[] { "Hello", " world" } });

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        string generated = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("generated").GetString()!;
        Paths.Model.Tokenizer!.Encode(generated).Count.Should().BeInRange(1, 5, "4 new tokens at most (re-tokenizing may merge or split one)");
    }

    [Fact]
    public async Task A_prompt_and_max_tokens_beyond_the_model_context_is_a_400()
    {
        using var server = new ServerFactory(new() { ["BlockAttentionServer:MaxNewTokens"] = "200000" });
        using var client = server.CreateClient();
        int context = Paths.Model.Info.MaxPositions;
        int promptTokens = Paths.Model.Tokenizer!.Encode("one two three four").Count;

        var response = await client.PostAsJsonAsync("/v1/chat/completions", new
        {
            max_tokens = context,
            messages = new[] { new { role = "user", content = "one two three four" } },
        });

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        error.GetProperty("code").GetString().Should().Be("context_length_exceeded");
        // The chat format adds its role markers around the text, so the prompt has more tokens than the text alone.
        error.GetProperty("message").GetString().Should().MatchRegex(
            $@"^the prompt has (\d+) tokens and asks for up to {context} new ones, more than the model's context of {context} tokens$");
        int counted = int.Parse(System.Text.RegularExpressions.Regex.Match(error.GetProperty("message").GetString()!, @"has (\d+) tokens").Groups[1].Value);
        counted.Should().BeGreaterThanOrEqualTo(promptTokens);
    }

    private async Task<(HttpStatusCode Status, string Message)> GenerateAsync(object body)
    {
        using var client = _server.CreateClient();
        var response = await client.PostAsJsonAsync("/generate", body);
        var envelope = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        envelope.GetProperty("ret").GetInt32().Should().Be((int)response.StatusCode);
        return (response.StatusCode, envelope.GetProperty("message").GetString()!);
    }
}
