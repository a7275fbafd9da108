// The program of the ASP.NET Core app that eng/verify-consumer.sh creates with `dotnet new web`
// and builds against the packed BlockAttention packages only. It is not part of any project here.
// Everything is registered by AddBlockAttention from appsettings.json; requests are answered
// through IChatClient, whole (POST /ask) or streamed (POST /ask/stream).
using BlockAttention.AI;
using Microsoft.Extensions.AI;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddBlockAttention(builder.Configuration.GetSection("BlockAttention"));
var app = builder.Build();

app.MapPost("/ask", async (AskRequest request, IChatClient chat, CancellationToken cancellationToken) =>
{
    var response = await chat.GetResponseAsync(Messages(request), new ChatOptions { MaxOutputTokens = request.MaxTokens }, cancellationToken);
    return new AskResponse(response.Text, response.Usage?.InputTokenCount ?? 0, response.Usage?.CachedInputTokenCount ?? 0, response.FinishReason?.Value);
});

app.MapPost("/ask/stream", async (AskRequest request, IChatClient chat, HttpResponse http, CancellationToken cancellationToken) =>
{
    http.ContentType = "text/plain; charset=utf-8";
    await foreach (var update in chat.GetStreamingResponseAsync(Messages(request), new ChatOptions { MaxOutputTokens = request.MaxTokens }, cancellationToken))
    {
        await http.WriteAsync(update.Text, cancellationToken);
    }
});

app.Run();

// Each passage is a block of its own, found in the store when a later request sends it again.
static List<ChatMessage> Messages(AskRequest request) =>
    [new(ChatRole.User, [.. request.Passages.Select(p => BlockAttentionChatClient.Passage(p)), new TextContent(request.Question)])];

/// <summary>A question over passages.</summary>
public sealed record AskRequest(string[] Passages, string Question, int MaxTokens = 8);

/// <summary>The answer and its token usage.</summary>
public sealed record AskResponse(string Text, long InputTokens, long CachedInputTokens, string? FinishReason);

/// <summary>Visible to the tests' WebApplicationFactory.</summary>
public partial class Program;
