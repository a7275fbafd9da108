namespace BlockAttention.AspNetCore.Http;

/// <summary>A request the server refuses: the status code (4xx) and a message for the client.</summary>
internal sealed class ApiException(int statusCode, string message, string? param = null, string? code = null) : Exception(message)
{
    public int StatusCode { get; } = statusCode;

    /// <summary>The request field at fault, when there is one (OpenAI's <c>param</c>).</summary>
    public string? Param { get; } = param;

    /// <summary>A machine-readable reason (OpenAI's <c>code</c>), e.g. <c>context_length_exceeded</c>.</summary>
    public string? Code { get; } = code;
}
