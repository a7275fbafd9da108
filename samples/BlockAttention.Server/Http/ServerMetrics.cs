using System.Diagnostics.Metrics;

namespace BlockAttention.Server.Http;

/// <summary>The server's own instruments (meter <c>BlockAttention.Server</c>), exported on /metrics beside the library's.</summary>
internal sealed class ServerMetrics : IDisposable
{
    public const string MeterName = "BlockAttention.Server";

    private readonly Meter _meter;
    private readonly Counter<long> _requests;

    public ServerMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(MeterName);
        _requests = _meter.CreateCounter<long>("blockattention.server.requests", "{request}",
            "Generation requests by endpoint and outcome: ok, client_error, rejected (queue full), cancelled (client went away), server_error");
    }

    public void Count(string endpoint, string outcome) =>
        _requests.Add(1, new KeyValuePair<string, object?>("endpoint", endpoint), new KeyValuePair<string, object?>("outcome", outcome));

    public void Dispose() => _meter.Dispose();
}
