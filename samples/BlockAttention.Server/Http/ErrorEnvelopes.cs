using System.Text.Json.Serialization;
using BlockAttention.Server.Reference;

namespace BlockAttention.Server.Http;

/// <summary>
/// Turns failures into each API's error shape: the reference's <c>{"ret", "generated", "message"}</c>
/// with <c>ret</c> ≠ 0 for /generate, OpenAI's <c>{"error": {...}}</c> for /v1. A client that went
/// away is not answered; its generation has already stopped through the request's cancellation.
/// </summary>
internal static partial class ErrorEnvelopes
{
    public static bool IsReference(HttpContext context) => !context.Request.Path.StartsWithSegments("/v1");

    public static IResult For(HttpContext context, int status, string message, string? param = null, string? code = null) =>
        IsReference(context)
            ? Results.Json(new GenerateResponse(status, "", message), ServerJson.Options, statusCode: status)
            : Results.Json(new OpenAIErrorBody(new OpenAIError(message, status < 500 ? "invalid_request_error" : "server_error", param, code)),
                ServerJson.Options, statusCode: status);

    /// <summary>An endpoint filter: ApiException and the library's ArgumentException become 4xx, anything else a logged 500.</summary>
    public static async ValueTask<object?> Filter(EndpointFilterInvocationContext invocation, EndpointFilterDelegate next)
    {
        var context = invocation.HttpContext;
        var metrics = context.RequestServices.GetRequiredService<ServerMetrics>();
        string endpoint = context.Request.Path.Value ?? "";
        try
        {
            var result = await next(invocation);
            metrics.Count(endpoint, "ok");
            return result;
        }
        catch (ApiException e)
        {
            metrics.Count(endpoint, "client_error");
            return For(context, e.StatusCode, e.Message, e.Param, e.Code);
        }
        catch (Exception e) when (context.Response.HasStarted && e is not OperationCanceledException)
        {
            // A stream already under way: its status is sent, so the error can only end it.
            metrics.Count(endpoint, "server_error");
            LogFailure(Logger(context), e, endpoint);
            return Results.Empty;
        }
        catch (NotSupportedException e)
        {
            // The chat client refuses what it cannot honour (content other than text, for example).
            metrics.Count(endpoint, "client_error");
            return For(context, StatusCodes.Status400BadRequest, e.Message);
        }
        catch (ArgumentException e)
        {
            // BlockSession's checks (prompt longer than the model's positions, an empty final block, bad options).
            metrics.Count(endpoint, "client_error");
            return For(context, StatusCodes.Status400BadRequest, e.Message);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            metrics.Count(endpoint, "cancelled");
            return Results.Empty;
        }
        catch (Exception e)
        {
            metrics.Count(endpoint, "server_error");
            LogFailure(Logger(context), e, endpoint);
            return For(context, StatusCodes.Status500InternalServerError, "the server failed to generate; its log has the details");
        }
    }

    private static ILogger Logger(HttpContext context) =>
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("BlockAttention.Server");

    [LoggerMessage(EventId = 1, Level = LogLevel.Error, Message = "Request to {Endpoint} failed")]
    private static partial void LogFailure(ILogger logger, Exception exception, string endpoint);
}

/// <summary>OpenAI's error body.</summary>
internal sealed record OpenAIErrorBody([property: JsonPropertyName("error")] OpenAIError Error);

/// <summary>OpenAI's error object.</summary>
internal sealed record OpenAIError(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("param")] string? Param,
    [property: JsonPropertyName("code")] string? Code);
