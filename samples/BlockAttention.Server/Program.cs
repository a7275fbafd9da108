using BlockAttention.AspNetCore;
using BlockAttention.Diagnostics;
using BlockAttention.Hosting;
using OpenTelemetry.Metrics;

var builder = WebApplication.CreateBuilder(args);

// The model, block store, session and IChatClient, from the "BlockAttention" section (Model, Device, DType, Store, ...).
builder.Services.AddBlockAttention(builder.Configuration.GetSection(BlockAttentionOptions.SectionName));
// The endpoints' limits and queue, from the "BlockAttentionServer" section.
builder.Services.AddBlockAttentionServer(builder.Configuration.GetSection(BlockAttentionServerOptions.SectionName));
// Prometheus metrics: the library's meter (TTFT, tokens, store hits) and the endpoints' request counter.
builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
    .AddMeter(BlockAttentionDiagnostics.Name, BlockAttentionServerDiagnostics.MeterName)
    .AddPrometheusExporter());

var app = builder.Build();
app.MapBlockAttentionEndpoints(); // POST /generate, POST /v1/chat/completions, GET /v1/models, GET /health
app.MapPrometheusScrapingEndpoint("/metrics");
app.Run();

/// <summary>The entry point; public so that tests can host the server with WebApplicationFactory.</summary>
public partial class Program;
