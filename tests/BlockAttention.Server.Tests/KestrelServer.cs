using System.Net;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace BlockAttention.Server.Tests;

/// <summary>The sample server's program on a real Kestrel, bound to 127.0.0.1 on a free port, as a user runs it.</summary>
internal sealed class KestrelServer : IAsyncDisposable
{
    private readonly ServerFactory _factory;

    private KestrelServer(ServerFactory factory, Uri address)
    {
        _factory = factory;
        Address = address;
    }

    public Uri Address { get; }

    public static Task<KestrelServer> StartAsync(Dictionary<string, string?>? settings = null, Func<IServiceProvider, BlockAttention.Caching.IKvBlockStore>? store = null)
    {
        var factory = new ServerFactory(settings, store);
        factory.UseKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        factory.StartServer();
        string address = factory.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return Task.FromResult(new KestrelServer(factory, new Uri(address)));
    }

    public ValueTask DisposeAsync() => _factory.DisposeAsync();
}
