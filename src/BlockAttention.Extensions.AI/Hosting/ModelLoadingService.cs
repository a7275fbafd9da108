using BlockAttention.Models;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace BlockAttention.Hosting;

/// <summary>
/// Loads the model while the host starts, so that the first request does not pay for it. A
/// checkpoint that fails to load stops the host with the loader's exception.
/// </summary>
internal sealed class ModelLoadingService(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) =>
        Task.Run(() => services.GetRequiredService<ICausalLanguageModel>(), cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
