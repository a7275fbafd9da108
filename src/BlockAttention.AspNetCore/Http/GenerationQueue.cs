using System.Threading.RateLimiting;
using BlockAttention.Hosting;
using Microsoft.Extensions.Options;

namespace BlockAttention.AspNetCore.Http;

/// <summary>
/// One queue for every generating endpoint: <see cref="ConcurrentRequests"/> generate, up to
/// <see cref="QueuedRequests"/> wait, first come first served; past that a request is refused at once.
/// Unset, the limits are the session's (<see cref="BlockAttentionOptions.MaxBatchSize"/> and
/// <see cref="BlockAttentionOptions.MaxQueuedRequests"/>): a full batch, and the session's queue bound.
/// </summary>
internal sealed class GenerationQueue : IDisposable
{
    private readonly ConcurrencyLimiter _limiter;

    public GenerationQueue(IOptions<BlockAttentionServerOptions> options, IOptions<BlockAttentionOptions> session)
    {
        ConcurrentRequests = options.Value.MaxConcurrentRequests ?? session.Value.MaxBatchSize;
        QueuedRequests = options.Value.MaxQueuedRequests ?? session.Value.MaxQueuedRequests;
        _limiter = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = ConcurrentRequests,
            QueueLimit = QueuedRequests,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
    }

    /// <summary>Requests generating at once.</summary>
    public int ConcurrentRequests { get; }

    /// <summary>Requests that may wait for a slot.</summary>
    public int QueuedRequests { get; }

    /// <summary>Waits for a slot; the lease's <see cref="RateLimitLease.IsAcquired"/> is false when the queue is full.</summary>
    public ValueTask<RateLimitLease> EnterAsync(CancellationToken cancellationToken) => _limiter.AcquireAsync(1, cancellationToken);

    public void Dispose() => _limiter.Dispose();
}
