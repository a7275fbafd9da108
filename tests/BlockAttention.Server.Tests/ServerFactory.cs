using BlockAttention.Caching;
using BlockAttention.Llama;
using BlockAttention.Models;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace BlockAttention.Server.Tests;

/// <summary>The server in-process (TestServer) on the tiny fixture model, with optional settings and a replaced block store.</summary>
public class ServerFactory : WebApplicationFactory<Program>
{
    private readonly Dictionary<string, string?> _settings;
    private readonly Func<IServiceProvider, IKvBlockStore>? _store;

    public ServerFactory(Dictionary<string, string?>? settings = null, Func<IServiceProvider, IKvBlockStore>? store = null)
    {
        _settings = new Dictionary<string, string?> { ["BlockAttention:Model"] = Paths.TinyModel };
        foreach (var (key, value) in settings ?? [])
        {
            _settings[key] = value;
        }

        _store = store;
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        builder.ConfigureTestServices(services =>
        {
            // Every server in the test run shares one loaded copy of the fixture (a model is
            // immutable); loading its 9 MB tokenizer.json per server would dominate the run time.
            // Registered as instances, which the container never disposes (a factory's result it would).
            services.RemoveAll<LlamaModel>();
            services.RemoveAll<ICausalLanguageModel>();
            services.AddSingleton(Paths.Model);
            services.AddSingleton<ICausalLanguageModel>(Paths.Model);
            if (_store is not null)
            {
                services.RemoveAll<IKvBlockStore>();
                services.AddSingleton(_store);
            }
        });
    }
}
