using System.Text.Json;
using System.Text.Json.Serialization;

namespace BlockAttention.AspNetCore.OpenAI;

/// <summary>The body of <c>POST /v1/chat/completions</c>: the OpenAI fields this server reads; any other field is ignored.</summary>
internal sealed class ChatCompletionRequest
{
    [JsonPropertyName("model")]
    public string? Model { get; init; }

    [JsonPropertyName("messages")]
    public required List<ChatCompletionMessage> Messages { get; init; }

    [JsonPropertyName("max_tokens")]
    public int? MaxTokens { get; init; }

    /// <summary>The newer name of <see cref="MaxTokens"/>; the OpenAI .NET client sends this one.</summary>
    [JsonPropertyName("max_completion_tokens")]
    public int? MaxCompletionTokens { get; init; }

    [JsonPropertyName("temperature")]
    public float? Temperature { get; init; }

    [JsonPropertyName("top_p")]
    public float? TopP { get; init; }

    /// <summary>Not in OpenAI's API; accepted as vLLM and others do.</summary>
    [JsonPropertyName("top_k")]
    public int? TopK { get; init; }

    [JsonPropertyName("seed")]
    public long? Seed { get; init; }

    /// <summary>A string or a list of strings.</summary>
    [JsonPropertyName("stop")]
    public JsonElement? Stop { get; init; }

    [JsonPropertyName("n")]
    public int? N { get; init; }

    [JsonPropertyName("stream")]
    public bool? Stream { get; init; }

    [JsonPropertyName("stream_options")]
    public StreamOptions? StreamOptions { get; init; }

    /// <summary>Not in OpenAI's API: <c>block</c> (default), <c>full</c> or <c>block_one_pass</c>.</summary>
    [JsonPropertyName("attention_mode")]
    public string? AttentionMode { get; init; }

    [JsonPropertyName("tools")]
    public JsonElement? Tools { get; init; }
}

/// <summary>One message: a role and content given as a string or as a list of parts.</summary>
internal sealed class ChatCompletionMessage
{
    [JsonPropertyName("role")]
    public required string Role { get; init; }

    /// <summary>A string, a list of <c>{"type": "text", "text": ...}</c> parts, or null.</summary>
    [JsonPropertyName("content")]
    public JsonElement? Content { get; init; }
}

internal sealed class StreamOptions
{
    [JsonPropertyName("include_usage")]
    public bool? IncludeUsage { get; init; }
}
