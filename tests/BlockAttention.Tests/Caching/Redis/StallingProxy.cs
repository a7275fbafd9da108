using System.Net;
using System.Net.Sockets;

namespace BlockAttention.Tests.Caching.Redis;

/// <summary>
/// A TCP proxy in front of a server that can stop forwarding bytes (connections stay open, nothing
/// answers): a server that has become slow, or a network that drops everything.
/// </summary>
internal sealed class StallingProxy : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _target;
    private readonly CancellationTokenSource _stop = new();
    private volatile bool _stalled;

    public StallingProxy(int targetPort)
    {
        _target = targetPort;
        _listener.Start();
        _ = AcceptAsync();
    }

    public string Configuration => $"127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public bool Stalled
    {
        get => _stalled;
        set => _stalled = value;
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            var server = new TcpClient();
            try
            {
                await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException)
            {
                client.Dispose();
                server.Dispose();
                continue;
            }

            _ = PumpAsync(client, server);
            _ = PumpAsync(server, client);
        }
    }

    private async Task PumpAsync(TcpClient from, TcpClient to)
    {
        byte[] buffer = new byte[1 << 16];
        try
        {
            var input = from.GetStream();
            var output = to.GetStream();
            while (true)
            {
                int read = await input.ReadAsync(buffer, _stop.Token);
                if (read == 0)
                {
                    break;
                }

                while (_stalled)
                {
                    await Task.Delay(10, _stop.Token);
                }

                await output.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            from.Dispose();
            to.Dispose();
        }
    }
}
