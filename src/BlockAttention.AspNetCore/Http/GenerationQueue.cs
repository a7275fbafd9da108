using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace BlockAttention.AspNetCore.Http;

/// <summary>
/// One queue for every generating endpoint: <see cref="BlockAttentionServerOptions.MaxConcurrentRequests"/>
/// generate, up to <see cref="BlockAttentionServerOptions.MaxQueuedRequests"/> wait, first come first
/// served; past that a request is refused at once.
/// </summary>
internal sealed class GenerationQueue(IOptions<BlockAttentionServerOptions> options) : IDisposable
{
    private readonly ConcurrencyLimiter _limiter = new(new ConcurrencyLimiterOptions
    {
        PermitLimit = options.Value.MaxConcurrentRequests,
        QueueLimit = options.Value.MaxQueuedRequests,
        QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
    });

    /// <summary>Waits for a slot; the lease's <see cref="RateLimitLease.IsAcquired"/> is false when the queue is full.</summary>
    public ValueTask<RateLimitLease> EnterAsync(CancellationToken cancellationToken) => _limiter.AcquireAsync(1, cancellationToken);

    public void Dispose() => _limiter.Dispose();
}
