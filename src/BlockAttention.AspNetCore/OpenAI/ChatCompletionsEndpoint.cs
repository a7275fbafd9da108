using System.Text.Json;
using BlockAttention.AI;
using BlockAttention.Hosting;
using BlockAttention.AspNetCore.Http;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Options;

namespace BlockAttention.AspNetCore.OpenAI;

/// <summary>
/// <c>POST /v1/chat/completions</c>, OpenAI-compatible, on the <see cref="BlockAttentionChatClient"/>:
/// non-streaming, or <c>"stream": true</c> as server-sent events. <c>usage.prompt_tokens_details.cached_tokens</c>
/// counts the prompt tokens whose states came from the block store. A client that disconnects
/// cancels its generation.
/// </summary>
internal static class ChatCompletionsEndpoint
{
    public static async Task<IResult> HandleAsync(HttpContext context, BlockAttentionChatClient client, IOptions<BlockAttentionServerOptions> settings,
        PromptLimits promptLimits, IOptions<BlockAttentionOptions> modelOptions)
    {
        var limits = settings.Value;
        var cancellationToken = context.RequestAborted;
        var request = await JsonBody.ReadAsync<ChatCompletionRequest>(context.Request, limits, cancellationToken);
        string modelId = client.Metadata.DefaultModelId!;
        if (request.Model is { Length: > 0 } model && model != modelId)
        {
            throw new ApiException(StatusCodes.Status404NotFound, $"The model '{model}' does not exist; this server serves '{modelId}'", "model", "model_not_found");
        }

        if (request.N is { } n && n != 1)
        {
            throw new ApiException(StatusCodes.Status400BadRequest, $"'n' must be 1, got {n}: one answer per request", "n");
        }

        if (request.Tools is { ValueKind: JsonValueKind.Array } tools && tools.GetArrayLength() > 0)
        {
            throw new ApiException(StatusCodes.Status400BadRequest, "tools (function calling) are not supported", "tools");
        }

        var messages = ChatMessageMapper.Map(request.Messages);
        var prompt = client.CreatePrompt(messages);
        int maxTokens = request.MaxCompletionTokens ?? request.MaxTokens ?? Math.Min(modelOptions.Value.DefaultMaxOutputTokens, limits.MaxNewTokens);
        string maxTokensParam = request.MaxCompletionTokens is null ? "max_tokens" : "max_completion_tokens";
        if (maxTokens < 1 || maxTokens > limits.MaxNewTokens)
        {
            throw new ApiException(StatusCodes.Status400BadRequest,
                $"'{maxTokensParam}' must be between 1 and {limits.MaxNewTokens} ({limits.Key(nameof(limits.MaxNewTokens))}), got {maxTokens}", maxTokensParam);
        }

        promptLimits.Check([.. prompt.Blocks.Select(b => b.Text ?? "")], maxTokens, "messages");
        var options = new ChatOptions
        {
            MaxOutputTokens = maxTokens,
            Temperature = request.Temperature,
            TopP = request.TopP,
            TopK = request.TopK,
            Seed = request.Seed,
            StopSequences = StopSequences(request.Stop),
        };
        if (request.AttentionMode is { } mode)
        {
            options.AdditionalProperties = new() { [BlockAttentionChatClient.ModeProperty] = mode };
        }

        if (request.Stream == true)
        {
            await StreamAsync(context, client, messages, options, request.StreamOptions?.IncludeUsage == true, cancellationToken);
            return Results.Empty;
        }

        var response = await client.GetResponseAsync(messages, options, cancellationToken);
        var completion = new ChatCompletion(response.ResponseId ?? "chatcmpl-", Created(response.CreatedAt), modelId,
            [new ChatCompletionChoice(0, new AssistantMessage(response.Text), FinishReasonName(response.FinishReason))], Usage(response.Usage));
        return Results.Json(completion, ServerJson.Options);
    }

    private static async Task StreamAsync(HttpContext context, BlockAttentionChatClient client, List<ChatMessage> messages, ChatOptions options,
        bool includeUsage, CancellationToken cancellationToken)
    {
        await using var updates = client.GetStreamingResponseAsync(messages, options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        // The first step runs the prompt: its errors (a prompt too long, bad options) still get a 4xx status.
        bool more = await updates.MoveNextAsync();
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        string id = "chatcmpl-", model = client.Metadata.DefaultModelId!;
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        bool first = true;
        for (; more; more = await updates.MoveNextAsync())
        {
            var update = updates.Current;
            id = update.ResponseId ?? id;
            created = update.CreatedAt is { } at ? at.ToUnixTimeSeconds() : created;
            if (first || update.Text.Length > 0)
            {
                // OpenAI's first chunk carries the role.
                await WriteEventAsync(response, new ChatCompletionChunk(id, created, model,
                    [new ChunkChoice(0, new ChunkDelta(first ? "assistant" : null, update.Text), null)]), cancellationToken);
                first = false;
            }

            if (update.FinishReason is { } finish)
            {
                await WriteEventAsync(response, new ChatCompletionChunk(id, created, model,
                    [new ChunkChoice(0, new ChunkDelta(null, null), FinishReasonName(finish))]), cancellationToken);
                var usage = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details;
                if (includeUsage && usage is not null)
                {
                    await WriteEventAsync(response, new ChatCompletionChunk(id, created, model, [], Usage(usage)), cancellationToken);
                }
            }
        }

        await response.WriteAsync("data: [DONE]\n\n", cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    private static async Task WriteEventAsync(HttpResponse response, ChatCompletionChunk chunk, CancellationToken cancellationToken)
    {
        await response.WriteAsync($"data: {JsonSerializer.Serialize(chunk, ServerJson.Options)}\n\n", cancellationToken);
        await response.Body.FlushAsync(cancellationToken);
    }

    private static List<string>? StopSequences(JsonElement? stop) => stop switch
    {
        null or { ValueKind: JsonValueKind.Null } => null,
        { ValueKind: JsonValueKind.String } one => one.GetString() is { Length: > 0 } s ? [s] : null,
        { ValueKind: JsonValueKind.Array } many when many.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String && e.GetString()!.Length > 0) =>
            [.. many.EnumerateArray().Select(e => e.GetString()!)],
        _ => throw new ApiException(StatusCodes.Status400BadRequest, "'stop' must be a non-empty string or a list of them", "stop"),
    };

    private static string FinishReasonName(ChatFinishReason? reason) => reason == ChatFinishReason.Length ? "length" : "stop";

    private static long Created(DateTimeOffset? at) => (at ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds();

    private static ChatCompletionUsage Usage(UsageDetails? usage)
    {
        long input = usage?.InputTokenCount ?? 0, output = usage?.OutputTokenCount ?? 0;
        return new ChatCompletionUsage(input, output, input + output, new PromptTokensDetails(usage?.CachedInputTokenCount ?? 0));
    }
}
