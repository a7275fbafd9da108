namespace BlockAttention.Server;

/// <summary>
/// The server's limits and queue, the <c>"Server"</c> section of appsettings.json (or environment
/// variables such as <c>Server__MaxBlocks=64</c>). Every limit, when exceeded, is a 4xx JSON error
/// that says which one.
/// </summary>
public sealed class ServerOptions
{
    /// <summary>The configuration section.</summary>
    public const string SectionName = "Server";

    /// <summary>The largest request body, in bytes (default 8 MiB); larger is 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 8L << 20;

    /// <summary>The most blocks (or chat messages' text parts) in one request (default 256).</summary>
    public int MaxBlocks { get; set; } = 256;

    /// <summary>The most tokens in one block (default 32768).</summary>
    public int MaxBlockTokens { get; set; } = 32768;

    /// <summary>The most new tokens a request may ask for, and what <c>/generate</c> generates at most (default 2048, as the reference).</summary>
    public int MaxNewTokens { get; set; } = 2048;

    /// <summary>Requests generating at the same time (default 4); they share the model step by step.</summary>
    public int MaxConcurrentRequests { get; set; } = 4;

    /// <summary>Requests waiting, first come first served, for a free slot (default 64); past it, 429.</summary>
    public int MaxQueuedRequests { get; set; } = 64;

    /// <summary>The <c>Retry-After</c> seconds sent with a 429 (default 2).</summary>
    public int RetryAfterSeconds { get; set; } = 2;

    /// <summary>Throws when a setting is out of range, naming it as it is written in configuration.</summary>
    public void Validate()
    {
        static void AtLeast(long value, long minimum, string name)
        {
            if (value < minimum)
            {
                throw new InvalidOperationException($"{SectionName}:{name} must be at least {minimum}, got {value}");
            }
        }

        AtLeast(MaxRequestBodyBytes, 1024, nameof(MaxRequestBodyBytes));
        AtLeast(MaxBlocks, 1, nameof(MaxBlocks));
        AtLeast(MaxBlockTokens, 1, nameof(MaxBlockTokens));
        AtLeast(MaxNewTokens, 1, nameof(MaxNewTokens));
        AtLeast(MaxConcurrentRequests, 1, nameof(MaxConcurrentRequests));
        AtLeast(MaxQueuedRequests, 0, nameof(MaxQueuedRequests));
        AtLeast(RetryAfterSeconds, 1, nameof(RetryAfterSeconds));
    }
}
