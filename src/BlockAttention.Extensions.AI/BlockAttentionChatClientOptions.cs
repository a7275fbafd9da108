using BlockAttention.Generation;
using BlockAttention.Prompts;

namespace BlockAttention.AI;

/// <summary>Options of a <see cref="BlockAttentionChatClient"/>.</summary>
public sealed record BlockAttentionChatClientOptions
{
    /// <summary>
    /// The model id reported in responses and accepted in <see cref="Microsoft.Extensions.AI.ChatOptions.ModelId"/>
    /// (a request naming another model is refused). Null: the model's family, e.g. <c>llama</c>.
    /// </summary>
    public string? ModelId { get; init; }

    /// <summary>
    /// The chat layout. Null (the default): the one that the checkpoint's chat template uses
    /// (<see cref="ChatFormat.FromChatTemplate"/>), or <see cref="ChatFormat.Tulu"/> when the
    /// checkpoint has none that is recognised.
    /// </summary>
    public ChatFormat? Format { get; init; }

    /// <summary>How conversations are rendered (for example, whether a beginning-of-text token is added).</summary>
    public ChatPromptOptions PromptOptions { get; init; } = new();

    /// <summary>Tokens to generate when a request does not set <see cref="Microsoft.Extensions.AI.ChatOptions.MaxOutputTokens"/>. Default 256.</summary>
    public int DefaultMaxOutputTokens { get; init; } = 256;

    /// <summary>The attention mode when a request does not choose one. Default <see cref="AttentionMode.Block"/>.</summary>
    public AttentionMode DefaultMode { get; init; } = AttentionMode.Block;
}
