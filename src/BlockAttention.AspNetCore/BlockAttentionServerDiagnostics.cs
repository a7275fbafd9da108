namespace BlockAttention.AspNetCore;

/// <summary>
/// The meter of the endpoints, for OpenTelemetry's <c>AddMeter</c> beside the library's
/// <see cref="BlockAttention.Diagnostics.BlockAttentionDiagnostics.Name"/>.
/// </summary>
public static class BlockAttentionServerDiagnostics
{
    /// <summary>The meter's name: <c>BlockAttention.Server</c>.</summary>
    public const string MeterName = "BlockAttention.Server";

    /// <summary>
    /// Counter, requests: generation requests by <c>endpoint</c> (the request path) and <c>outcome</c>:
    /// <c>ok</c>, <c>client_error</c>, <c>rejected</c> (queue full), <c>cancelled</c> (the client went away), <c>server_error</c>.
    /// </summary>
    public const string Requests = "blockattention.server.requests";
}
