using System.Net;
using System.Text.Json;
using BlockAttention.AspNetCore;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace BlockAttention.Server.Tests;

/// <summary>The package's registration: settings checked at start-up by name, and the endpoints mapped by code under a prefix.</summary>
public sealed class ServerOptionsTests
{
    [Fact]
    public void A_setting_out_of_range_stops_the_start_naming_its_key()
    {
        using var server = new ServerFactory(new() { ["BlockAttentionServer:MaxBlocks"] = "0", ["BlockAttentionServer:RetryAfterSeconds"] = "-3" });

        var start = () => server.CreateClient();

        start.Should().Throw<OptionsValidationException>().Which.Failures.Should().BeEquivalentTo(
            "BlockAttentionServer:MaxBlocks must be at least 1, got 0",
            "BlockAttentionServer:RetryAfterSeconds must be at least 1, got -3");
    }

    [Fact]
    public async Task Endpoints_under_a_prefix_keep_each_api_error_shape_and_options_set_in_code_name_the_options_type()
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseTestServer();
        builder.Services.AddBlockAttention(options => options.Model = Paths.TinyModel);
        // The shared model, as instances the container does not dispose (see ServerFactory).
        builder.Services.AddSingleton(Paths.Model);
        builder.Services.AddSingleton<BlockAttention.Models.ICausalLanguageModel>(Paths.Model);
        builder.Services.AddBlockAttentionServer(options => options.MaxBlocks = 1);
        await using var app = builder.Build();
        app.MapGroup("/api").MapBlockAttentionEndpoints();
        await app.StartAsync();
        using var client = app.GetTestClient();

        using var generate = await client.PostAsync("/api/generate", Json(new { blocks = new[] { "a", "b" } }));
        using var chat = await client.PostAsync("/api/v1/chat/completions", Json(new
        {
            messages = new[] { new { role = "user", content = new[] { new { type = "text", text = "a" }, new { type = "text", text = "b" } } } },
        }));

        generate.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var envelope = JsonDocument.Parse(await generate.Content.ReadAsStringAsync()).RootElement;
        envelope.GetProperty("ret").GetInt32().Should().Be(400);
        envelope.GetProperty("message").GetString().Should().Be("the request has 2 blocks, more than the limit of 1 (BlockAttentionServerOptions:MaxBlocks)");
        chat.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        var error = JsonDocument.Parse(await chat.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        error.GetProperty("code").GetString().Should().Be("too_many_blocks");
        error.GetProperty("message").GetString().Should().EndWith("(BlockAttentionServerOptions:MaxBlocks)");
        (await client.GetAsync("/api/health")).StatusCode.Should().Be(HttpStatusCode.OK);
    }

    private static StringContent Json(object body) => new(JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");
}
