namespace BlockAttention;

/// <summary>
/// A request was refused because the session already runs <see cref="BlockSessionOptions.MaxBatchSize"/>
/// requests and <see cref="BlockSessionOptions.MaxQueuedRequests"/> more are waiting. Retrying later
/// may succeed (a server would answer 503 or 429).
/// </summary>
public sealed class SessionBusyException : InvalidOperationException
{
    /// <summary>Creates the exception with <paramref name="message"/>.</summary>
    public SessionBusyException(string message)
        : base(message)
    {
    }
}
