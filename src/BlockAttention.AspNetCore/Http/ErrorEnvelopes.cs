using System.Text.Json.Serialization;
using BlockAttention.AspNetCore.Reference;

namespace BlockAttention.AspNetCore.Http;

/// <summary>The error shape of an endpoint.</summary>
internal enum ErrorShape
{
    /// <summary>The reference server's <c>{"ret", "generated", "message"}</c>, <c>ret</c> ≠ 0.</summary>
    Reference,

    /// <summary>OpenAI's <c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
    OpenAI,
}

/// <summary>
/// The filter of every generating endpoint: it takes a place in the <see cref="GenerationQueue"/> (or
/// answers 429 with <c>Retry-After</c>), counts the outcome, and turns failures into the endpoint's
/// error shape. A client that went away is not answered; its generation has already stopped through
/// the request's cancellation.
/// </summary>
internal static partial class ErrorEnvelopes
{
    public static IResult For(ErrorShape shape, int status, string message, string? param = null, string? code = null) =>
        shape == ErrorShape.Reference
            ? Results.Json(new GenerateResponse(status, "", message), ServerJson.Options, statusCode: status)
            : Results.Json(new OpenAIErrorBody(new OpenAIError(message, status < 500 ? "invalid_request_error" : "server_error", param, code)),
                ServerJson.Options, statusCode: status);

    /// <summary>An endpoint filter: ApiException and the library's ArgumentException become 4xx, anything else a logged 500.</summary>
    public static EndpointFilterDelegate Filter(ErrorShape shape, EndpointFilterDelegate next) => async invocation =>
    {
        var context = invocation.HttpContext;
        var services = context.RequestServices;
        var metrics = services.GetRequiredService<ServerMetrics>();
        string endpoint = context.Request.Path.Value ?? "";
        try
        {
            var queue = services.GetRequiredService<GenerationQueue>();
            using var lease = await queue.EnterAsync(context.RequestAborted);
            if (!lease.IsAcquired)
            {
                metrics.Count(endpoint, "rejected");
                int retryAfter = RetryAfter(context);
                return For(shape, StatusCodes.Status429TooManyRequests,
                    $"the server is busy: {queue.ConcurrentRequests} requests are generating and {queue.QueuedRequests} are waiting; " +
                    $"retry after {retryAfter} s", code: "queue_full");
            }

            var result = await next(invocation);
            metrics.Count(endpoint, "ok");
            return result;
        }
        catch (ApiException e)
        {
            metrics.Count(endpoint, "client_error");
            return For(shape, e.StatusCode, e.Message, e.Param, e.Code);
        }
        catch (Exception e) when (context.Response.HasStarted && e is not OperationCanceledException)
        {
            // A stream already under way: its status is sent, so the error can only end it.
            metrics.Count(endpoint, "server_error");
            LogFailure(Logger(context), e, endpoint);
            return Results.Empty;
        }
        catch (SessionBusyException e) when (!context.Response.HasStarted)
        {
            // The session's own queue is full (it serves other callers too, or the server's limits exceed it).
            metrics.Count(endpoint, "rejected");
            int retryAfter = RetryAfter(context);
            return For(shape, StatusCodes.Status503ServiceUnavailable, $"{e.Message}; retry after {retryAfter} s", code: "session_busy");
        }
        catch (NotSupportedException e)
        {
            // The chat client refuses what it cannot honour (content other than text, for example).
            metrics.Count(endpoint, "client_error");
            return For(shape, StatusCodes.Status400BadRequest, e.Message);
        }
        catch (ArgumentException e)
        {
            // BlockSession's checks (prompt longer than the model's positions, an empty final block, bad options).
            metrics.Count(endpoint, "client_error");
            return For(shape, StatusCodes.Status400BadRequest, e.Message);
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
            return For(shape, StatusCodes.Status500InternalServerError, "the server failed to generate; its log has the details");
        }
    };

    /// <summary>Sets <c>Retry-After</c> on the response and returns its seconds.</summary>
    private static int RetryAfter(HttpContext context)
    {
        int seconds = context.RequestServices.GetRequiredService<Microsoft.Extensions.Options.IOptions<BlockAttentionServerOptions>>().Value.RetryAfterSeconds;
        context.Response.Headers.RetryAfter = $"{seconds}";
        return seconds;
    }

    private static ILogger Logger(HttpContext context) =>
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("BlockAttention.AspNetCore");

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
