using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace BlockAttention.Server.Tests;

/// <summary>The server on a real Kestrel, bound to 127.0.0.1 on a free port, as a user runs it.</summary>
internal sealed class KestrelServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private KestrelServer(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public static async Task<KestrelServer> StartAsync(Dictionary<string, string?>? settings = null)
    {
        var all = new Dictionary<string, string?> { ["BlockAttention:Model"] = Paths.TinyModel };
        foreach (var (key, value) in settings ?? [])
        {
            all[key] = value;
        }

        var app = ServerApp.Build(["--urls", "http://127.0.0.1:0"], builder =>
        {
            builder.Configuration.AddInMemoryCollection(all);
            // Shared, and registered as instances so that the container does not dispose it (see ServerFactory).
            builder.Services.AddSingleton(Paths.Model);
            builder.Services.AddSingleton<BlockAttention.Models.ICausalLanguageModel>(Paths.Model);
        });
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        return new KestrelServer(app, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
