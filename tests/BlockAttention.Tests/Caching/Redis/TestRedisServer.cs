using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Garnet;

namespace BlockAttention.Tests.Caching.Redis;

/// <summary>
/// A Redis-protocol server on 127.0.0.1 for one test, stoppable and restartable on the same port:
/// Debian's <c>redis-server</c> run as a child process in a temp folder, or Garnet in this process.
/// </summary>
internal abstract class TestRedisServer : IDisposable
{
    protected TestRedisServer(int port)
    {
        Port = port;
    }

    public int Port { get; }

    public string Configuration => $"127.0.0.1:{Port}";

    /// <summary>What serves the protocol, for test output.</summary>
    public abstract string Kind { get; }

    /// <summary>The redis-server binary on PATH, or null when it is not installed.</summary>
    public static string? RedisServerPath { get; } =
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Append("/usr/sbin").Append("/usr/bin")
            .Select(dir => Path.Combine(dir, "redis-server"))
            .FirstOrDefault(File.Exists);

    /// <summary>redis-server when installed, Garnet otherwise.</summary>
    public static TestRedisServer StartRedisOrGarnet() => RedisServerPath is null ? StartGarnet() : StartRedis();

    public static TestRedisServer StartRedis() => Started(new RedisServerProcess(FreePort()));

    public static TestRedisServer StartGarnet() => Started(new GarnetInProcess(FreePort()));

    public abstract void Start();

    public abstract void Stop();

    /// <summary>Stops the server for good and deletes what it left on disk.</summary>
    public virtual void Dispose() => Stop();

    protected void WaitUntilAccepting()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                client.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(20);
            }
        }
    }

    private static TestRedisServer Started(TestRedisServer server)
    {
        server.Start();
        return server;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed class RedisServerProcess(int port) : TestRedisServer(port)
    {
        private readonly string _directory = Directory.CreateTempSubdirectory("ba-redis-").FullName;
        private Process? _process;

        public override string Kind => "redis-server";

        public override void Start()
        {
            var start = new ProcessStartInfo(RedisServerPath ?? throw new InvalidOperationException("redis-server is not installed"))
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = _directory,
            };
            foreach (string arg in new[]
            {
                "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", _directory,
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
                "--maxmemory", "512mb", "--maxmemory-policy", "allkeys-lru", "--logfile", "",
            })
            {
                start.ArgumentList.Add(arg);
            }

            _process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start");
            _process.OutputDataReceived += (_, _) => { };
            _process.ErrorDataReceived += (_, _) => { };
            _process.BeginOutputReadLine();
            _process.BeginErrorReadLine();
            WaitUntilAccepting();
        }

        public override void Stop()
        {
            if (_process is { HasExited: false })
            {
                _process.Kill();
                _process.WaitForExit();
            }

            _process?.Dispose();
            _process = null;
        }

        public override void Dispose()
        {
            Stop();
            if (Directory.Exists(_directory))
            {
                Directory.Delete(_directory, recursive: true);
            }
        }
    }

    private sealed class GarnetInProcess(int port) : TestRedisServer(port)
    {
        private GarnetServer? _server;

        public override string Kind => "garnet";

        public override void Start()
        {
            _server = new GarnetServer(
            [
                "--bind", "127.0.0.1", "--port", Port.ToString(CultureInfo.InvariantCulture),
                "--memory", "512m", "--page", "64m", "--index", "16m", "--logger-level", "None",
            ]);
            _server.Start();
            WaitUntilAccepting();
        }

        public override void Stop()
        {
            _server?.Dispose();
            _server = null;
        }
    }
}
