namespace BlockAttention.AspNetCore;

/// <summary>
/// Request limits and the queue of the endpoints that <c>MapBlockAttentionEndpoints</c> maps, usually
/// the <c>"BlockAttentionServer"</c> section of appsettings.json (or environment variables such as
/// <c>BlockAttentionServer__MaxBlocks=64</c>). Every limit, when exceeded, is a 4xx JSON error that
/// names it. Checked when the host starts; a message names the setting at fault.
/// </summary>
/// <example>
/// <code language="json">
/// "BlockAttentionServer": {
///   "MaxRequestBodyBytes": 8388608,
///   "MaxBlocks": 256,
///   "RetryAfterSeconds": 2
/// }
/// </code>
/// </example>
public sealed class BlockAttentionServerOptions
{
    /// <summary>The configuration section that <c>AddBlockAttentionServer(IConfiguration)</c> is usually given.</summary>
    public const string SectionName = "BlockAttentionServer";

    /// <summary>The largest request body, in bytes (default 8 MiB); larger is 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 8L << 20;

    /// <summary>The most blocks (or chat messages' text parts) in one request (default 256).</summary>
    public int MaxBlocks { get; set; } = 256;

    /// <summary>The most tokens in one block (default 32768).</summary>
    public int MaxBlockTokens { get; set; } = 32768;

    /// <summary>The most new tokens a request may ask for, and what <c>/generate</c> generates at most (default 2048, as the reference server).</summary>
    public int MaxNewTokens { get; set; } = 2048;

    /// <summary>
    /// Requests generating at the same time; their decode steps share forward passes. Unset (the
    /// default): the session's <c>BlockAttention:MaxBatchSize</c> (16 unless set), so that the
    /// server admits enough requests to fill a batch.
    /// </summary>
    public int? MaxConcurrentRequests { get; set; }

    /// <summary>
    /// Requests waiting, first come first served, for a free slot; past it, 429. Unset (the
    /// default): the session's <c>BlockAttention:MaxQueuedRequests</c> (256 unless set).
    /// </summary>
    public int? MaxQueuedRequests { get; set; }

    /// <summary>The <c>Retry-After</c> seconds sent with a 429 or 503 (default 2).</summary>
    public int RetryAfterSeconds { get; set; } = 2;

    /// <summary>How the settings are named in messages: the configuration section's path.</summary>
    internal string SectionPath { get; set; } = SectionName;

    /// <summary>A setting's name as it is written in configuration, e.g. <c>BlockAttentionServer:MaxBlocks</c>.</summary>
    internal string Key(string setting) => SectionPath.Length == 0 ? setting : $"{SectionPath}:{setting}";
}
