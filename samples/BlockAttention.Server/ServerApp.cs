using System.Threading.RateLimiting;
using BlockAttention.Caching;
using BlockAttention.AI;
using BlockAttention.Hosting;
using BlockAttention.Models;
using BlockAttention.Server.Http;
using BlockAttention.Server.OpenAI;
using BlockAttention.Server.Reference;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;

namespace BlockAttention.Server;

/// <summary>Builds the server: services from configuration, the queue, and the endpoints.</summary>
internal static class ServerApp
{
    public const string QueuePolicy = "generation";

    private static readonly long StartedAt = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        configure?.Invoke(builder);

        // Options are read when the host is built, so that settings added later (tests, environment) count.
        builder.Services.AddOptions<ServerOptions>().BindConfiguration(ServerOptions.SectionName)
            .Validate(o => { o.Validate(); return true; }).ValidateOnStart();
        builder.Services.AddSingleton(sp => sp.GetRequiredService<IOptions<ServerOptions>>().Value);
        builder.Services.AddOptions<KestrelServerOptions>().Configure<IOptions<ServerOptions>>(
            (kestrel, server) => kestrel.Limits.MaxRequestBodySize = server.Value.MaxRequestBodyBytes);

        builder.Services.AddBlockAttention(builder.Configuration.GetSection(BlockAttentionOptions.SectionName));
        builder.Services.AddSingleton<PromptLimits>();
        builder.Services.AddSingleton<ServerMetrics>();
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter("BlockAttention", ServerMetrics.MeterName)
            .AddPrometheusExporter());
        builder.Services.AddRateLimiter(_ => { });
        builder.Services.AddOptions<RateLimiterOptions>().Configure<IOptions<ServerOptions>>((limiter, server) => ConfigureQueue(limiter, server.Value));

        var app = builder.Build();
        app.UseRateLimiter();
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/health", Health);

        app.MapGet("/v1/models", (BlockAttentionChatClient client) => Results.Json(
            new ModelList([new ModelEntry(client.Metadata.DefaultModelId!, StartedAt, "blockattention")]), ServerJson.Options));

        app.MapPost("/generate", GenerateEndpoint.HandleAsync)
            .AddEndpointFilter(ErrorEnvelopes.Filter)
            .RequireRateLimiting(QueuePolicy);
        app.MapPost("/v1/chat/completions", ChatCompletionsEndpoint.HandleAsync)
            .AddEndpointFilter(ErrorEnvelopes.Filter)
            .RequireRateLimiting(QueuePolicy);
        return app;
    }

    /// <summary>One queue for every generating endpoint, first come first served; past it, 429 with Retry-After.</summary>
    private static void ConfigureQueue(RateLimiterOptions limiter, ServerOptions server)
    {
        limiter.AddConcurrencyLimiter(QueuePolicy, queue =>
        {
            queue.PermitLimit = server.MaxConcurrentRequests;
            queue.QueueLimit = server.MaxQueuedRequests;
            queue.QueueProcessingOrder = QueueProcessingOrder.OldestFirst;
        });
        limiter.OnRejected = async (rejection, cancellationToken) =>
        {
            var context = rejection.HttpContext;
            context.RequestServices.GetRequiredService<ServerMetrics>().Count(context.Request.Path.Value ?? "", "rejected");
            context.Response.Headers.RetryAfter = $"{server.RetryAfterSeconds}";
            var error = ErrorEnvelopes.For(context, StatusCodes.Status429TooManyRequests,
                $"the server is busy: {server.MaxConcurrentRequests} requests are generating and {server.MaxQueuedRequests} are waiting; " +
                $"retry after {server.RetryAfterSeconds} s", code: "queue_full");
            await error.ExecuteAsync(context);
        };
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
