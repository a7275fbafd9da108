using BlockAttention.AI;
using BlockAttention.AspNetCore.Http;
using BlockAttention.AspNetCore.OpenAI;
using BlockAttention.AspNetCore.Reference;
using BlockAttention.Caching;
using BlockAttention.Models;
using Microsoft.AspNetCore.Routing;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps the BlockAttention endpoints.</summary>
public static class BlockAttentionEndpointRouteBuilderExtensions
{
    private static readonly long StartedAt = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>
    /// Maps <c>POST /generate</c> (the Block-Attention reference server's API), <c>POST /v1/chat/completions</c>
    /// (OpenAI-compatible, streaming too), <c>GET /v1/models</c> and <c>GET /health</c>.
    /// </summary>
    /// <remarks>
    /// Needs <c>AddBlockAttention</c> (the model and the chat client) and <c>AddBlockAttentionServer</c>
    /// (limits and queue). The two generating endpoints share one first-come-first-served queue; past
    /// it they answer 429 with <c>Retry-After</c>. Errors are JSON in each API's shape: the reference's
    /// <c>{"ret": status, "generated": "", "message": ...}</c> for <c>/generate</c>, OpenAI's
    /// <c>{"error": {...}}</c> for <c>/v1</c>. A client that disconnects cancels its generation.
    /// </remarks>
    /// <returns>A group of the endpoints, to add conventions to all of them (authorization, for example).</returns>
    public static RouteGroupBuilder MapBlockAttentionEndpoints(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var group = endpoints.MapGroup("");
        group.MapGet("/health", Health);
        group.MapGet("/v1/models", (BlockAttentionChatClient client) => Results.Json(
            new ModelList([new ModelEntry(client.Metadata.DefaultModelId!, StartedAt, BlockAttentionChatClient.ProviderName)]), ServerJson.Options));
        group.MapPost("/generate", GenerateEndpoint.HandleAsync)
            .AddEndpointFilterFactory((_, next) => ErrorEnvelopes.Filter(ErrorShape.Reference, next));
        group.MapPost("/v1/chat/completions", ChatCompletionsEndpoint.HandleAsync)
            .AddEndpointFilterFactory((_, next) => ErrorEnvelopes.Filter(ErrorShape.OpenAI, next));
        return group;
    }

    private static IResult Health(ICausalLanguageModel model, IKvBlockStore store)
    {
        var statistics = store.Statistics;
        return Results.Json(new
        {
            status = "ok",
            model = model.Info.Family,
            device = model.Info.Device.ToString(),
            max_positions = model.Info.MaxPositions,
            store = new { entries = statistics.Entries, bytes = statistics.Bytes, hits = statistics.Hits, misses = statistics.Misses },
        }, ServerJson.Options);
    }
}
