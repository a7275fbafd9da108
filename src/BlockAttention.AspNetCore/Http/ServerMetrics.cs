using System.Diagnostics.Metrics;

namespace BlockAttention.AspNetCore.Http;

/// <summary>The endpoints' own instruments (meter <see cref="BlockAttentionServerDiagnostics.MeterName"/>).</summary>
internal sealed class ServerMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly Counter<long> _requests;

    public ServerMetrics(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(BlockAttentionServerDiagnostics.MeterName);
        _requests = _meter.CreateCounter<long>(BlockAttentionServerDiagnostics.Requests, "{request}",
            "Generation requests by endpoint and outcome: ok, client_error, rejected (queue full), cancelled (client went away), server_error");
    }

    public void Count(string endpoint, string outcome) =>
        _requests.Add(1, new KeyValuePair<string, object?>("endpoint", endpoint), new KeyValuePair<string, object?>("outcome", outcome));

    public void Dispose() => _meter.Dispose();
}
