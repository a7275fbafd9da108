using System.Text.Json.Serialization;

namespace BlockAttention.AspNetCore.OpenAI;

/// <summary><c>chat.completion</c>, OpenAI's non-streaming answer.</summary>
internal sealed record ChatCompletion(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<ChatCompletionChoice> Choices,
    [property: JsonPropertyName("usage")] ChatCompletionUsage Usage)
{
    [JsonPropertyName("object")]
    public string Object => "chat.completion";
}

internal sealed record ChatCompletionChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("message")] AssistantMessage Message,
    [property: JsonPropertyName("finish_reason")] string FinishReason);

internal sealed record AssistantMessage([property: JsonPropertyName("content")] string Content)
{
    [JsonPropertyName("role")]
    public string Role => "assistant";
}

/// <summary><c>chat.completion.chunk</c>, one server-sent event of a streamed answer.</summary>
internal sealed record ChatCompletionChunk(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("model")] string Model,
    [property: JsonPropertyName("choices")] IReadOnlyList<ChunkChoice> Choices,
    [property: JsonPropertyName("usage")] ChatCompletionUsage? Usage = null)
{
    [JsonPropertyName("object")]
    public string Object => "chat.completion.chunk";
}

internal sealed record ChunkChoice(
    [property: JsonPropertyName("index")] int Index,
    [property: JsonPropertyName("delta")] ChunkDelta Delta,
    [property: JsonPropertyName("finish_reason")] string? FinishReason);

internal sealed record ChunkDelta(
    [property: JsonPropertyName("role")] string? Role,
    [property: JsonPropertyName("content")] string? Content);

internal sealed record ChatCompletionUsage(
    [property: JsonPropertyName("prompt_tokens")] long PromptTokens,
    [property: JsonPropertyName("completion_tokens")] long CompletionTokens,
    [property: JsonPropertyName("total_tokens")] long TotalTokens,
    [property: JsonPropertyName("prompt_tokens_details")] PromptTokensDetails PromptTokensDetails);

/// <summary><c>cached_tokens</c>: prompt tokens whose states came from the block store.</summary>
internal sealed record PromptTokensDetails([property: JsonPropertyName("cached_tokens")] long CachedTokens);

/// <summary>One entry of <c>GET /v1/models</c>.</summary>
internal sealed record ModelEntry(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("created")] long Created,
    [property: JsonPropertyName("owned_by")] string OwnedBy)
{
    [JsonPropertyName("object")]
    public string Object => "model";
}

internal sealed record ModelList([property: JsonPropertyName("data")] IReadOnlyList<ModelEntry> Data)
{
    [JsonPropertyName("object")]
    public string Object => "list";
}
