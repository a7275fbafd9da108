using System.Text.Json;
using System.Text.Json.Serialization;

namespace BlockAttention.AspNetCore.Http;

/// <summary>The JSON settings of every endpoint: unknown fields ignored (as OpenAI does), nulls left out of responses.</summary>
internal static class ServerJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip,
        // Numbers given as strings ("max_tokens": "5") are refused, as OpenAI does.
        NumberHandling = JsonNumberHandling.Strict,
        RespectNullableAnnotations = true,
    };
}
