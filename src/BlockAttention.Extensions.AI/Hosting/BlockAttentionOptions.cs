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
///   "Store": "memory",
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

    /// <summary>Where encoded passages are kept between requests: <c>memory</c> (default): in process memory, least recently used blocks evicted first.</summary>
    public string Store { get; set; } = "memory";

    /// <summary>The store's size in bytes. Give this or <see cref="StoreMaxTokens"/>; neither means 1 GiB.</summary>
    public long? StoreMaxBytes { get; set; }

    /// <summary>The store's size in tokens, converted with the model's KV bytes per token.</summary>
    public long? StoreMaxTokens { get; set; }

    /// <summary>Request KV caches kept allocated between requests (default 2); 0 frees each after its request.</summary>
    public int IdleCaches { get; set; } = 2;

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
