using BlockAttention.Generation;

namespace BlockAttention.Hosting;

/// <summary>
/// Settings of <c>AddBlockAttention</c>, usually the <c>"BlockAttention"</c> section of
/// appsettings.json. Checked when the host starts; a message names the setting at fault.
/// </summary>
/// <example>
/// <code language="json">
/// "BlockAttention": {
///   "Model": "models/Tulu3-Block-FT",
///   "Device": "cuda",
///   "DType": "bfloat16",
///   "Store": "memory+file:/var/cache/blockattention",
///   "StoreMaxTokens": 200000
/// }
/// </code>
/// </example>
public sealed class BlockAttentionOptions
{
    /// <summary>The configuration section that <c>AddBlockAttention(IConfiguration)</c> is usually given.</summary>
    public const string SectionName = "BlockAttention";

    /// <summary>The checkpoint folder (Hugging Face layout: config.json, safetensors weights, tokenizer.json). Required.</summary>
    public string? Model { get; set; }

    /// <summary><c>cpu</c> (default), <c>cuda</c> or <c>cuda:N</c>.</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>The precision; default <see cref="ModelDType.Float32"/>.</summary>
    public ModelDType DType { get; set; } = ModelDType.Float32;

    /// <summary>
    /// Where encoded passages are kept between requests:
    /// <list type="bullet">
    /// <item><c>memory</c> (default): in process memory, least recently used blocks evicted first.</item>
    /// <item><c>file:DIR</c>: one file per block under <c>DIR</c>; kept across restarts and shared by the processes of one machine.</item>
    /// <item><c>redis:HOST:PORT</c>: a Redis server, shared by every replica; lookups fall back to encoding while it is unreachable.
    /// Needs the BlockAttention.Redis package and <c>services.AddBlockAttentionRedis()</c>, which also sets the key prefix and time to live.</item>
    /// <item><c>memory+file:DIR</c> or <c>memory+redis:HOST:PORT</c>: a memory tier in front of the slow one (the usual choice for a server).</item>
    /// </list>
    /// </summary>
    public string Store { get; set; } = "memory";

    /// <summary>The memory tier's size in bytes. Give this or <see cref="StoreMaxTokens"/>; neither means 1 GiB.</summary>
    public long? StoreMaxBytes { get; set; }

    /// <summary>The memory tier's size in tokens, converted with the model's KV bytes per token.</summary>
    public long? StoreMaxTokens { get; set; }

    /// <summary>
    /// The most bytes of block files a <c>file:DIR</c> tier keeps (default 16 GiB); past it, the
    /// files used least recently are deleted.
    /// </summary>
    public long StoreFileMaxBytes { get; set; } = 16L << 30;

    /// <summary>Request KV caches kept allocated between requests (default 2); 0 frees each after its request.</summary>
    public int IdleCaches { get; set; } = 2;

    /// <summary>
    /// The most requests generating at once (default 16, as <see cref="BlockSessionOptions.MaxBatchSize"/>):
    /// their decode steps share forward passes, and each gets exactly the tokens it gets alone.
    /// 1 runs one request at a time through the plain forward pass.
    /// </summary>
    public int MaxBatchSize { get; set; } = 16;

    /// <summary>
    /// The most requests waiting for one of the <see cref="MaxBatchSize"/> places (default 256); one
    /// more is refused at once (<see cref="SessionBusyException"/>; the server package answers 429).
    /// </summary>
    public int MaxQueuedRequests { get; set; } = 256;

    /// <summary>The most final-block tokens one forward pass computes (default 128): a longer final block joins the batch in chunks.</summary>
    public int PrefillChunkTokens { get; set; } = 128;

    /// <summary>
    /// The most bytes of request KV caches (in use and idle); a request that does not fit waits, one
    /// that could never fit fails. Unset (the default): no bound.
    /// </summary>
    public long? MaxCacheBytes { get; set; }

    /// <summary>
    /// On the CPU, the threads of the session's forward passes for decode steps and final-block
    /// chunks (as <see cref="BlockSessionOptions.StepThreads"/>). Unset (the default): libtorch's
    /// thread count; 1 can serve better on a small or busy machine.
    /// </summary>
    public int? StepThreads { get; set; }

    /// <summary>
    /// The chat layout: <c>auto</c> (default: from the checkpoint's chat template, Tulu when it has
    /// none), <c>tulu</c> or <c>llama3</c>.
    /// </summary>
    public string ChatFormat { get; set; } = "auto";

    /// <summary>Adds the beginning-of-text token before a conversation (default false, as the reference).</summary>
    public bool AddBeginningOfText { get; set; }

    /// <summary>The model id that the chat client reports and accepts; default: the checkpoint folder's name.</summary>
    public string? ModelId { get; set; }

    /// <summary>Tokens to generate when a chat request does not say (default 256).</summary>
    public int DefaultMaxOutputTokens { get; set; } = 256;

    /// <summary>The attention mode when a chat request does not choose one (default <see cref="AttentionMode.Block"/>).</summary>
    public AttentionMode DefaultMode { get; set; } = AttentionMode.Block;

    /// <summary>The default store size when neither <see cref="StoreMaxBytes"/> nor <see cref="StoreMaxTokens"/> is set.</summary>
    public const long DefaultStoreMaxBytes = 1L << 30;
}
