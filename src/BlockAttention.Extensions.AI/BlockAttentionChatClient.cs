using System.Runtime.CompilerServices;
using BlockAttention.Generation;
using BlockAttention.Prompts;
using Microsoft.Extensions.AI;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using AIFinishReason = Microsoft.Extensions.AI.ChatFinishReason;
using FinishReason = BlockAttention.Generation.FinishReason;

namespace BlockAttention.AI;

/// <summary>
/// An <see cref="IChatClient"/> that answers with a <see cref="BlockSession"/>, so that passages
/// sent again in later requests come from the block store instead of being computed again.
/// </summary>
/// <remarks>
/// <para>How a conversation becomes a prompt of blocks (see <see cref="BlockPrompt.FromChat(IEnumerable{ChatTurn}, ChatFormat, ChatPromptOptions?)"/>):</para>
/// <list type="bullet">
/// <item>Every message is written in the chat format (<see cref="BlockAttentionChatClientOptions.Format"/>).</item>
/// <item>Each <see cref="TextContent"/> of a message before the last (system messages, earlier user and assistant turns) is a local block.</item>
/// <item>A <see cref="TextContent"/> marked as a passage (<see cref="Passage(string)"/>, or
/// <see cref="PassageProperty"/> set to <c>true</c> in its <see cref="AIContent.AdditionalProperties"/>) is a local block holding
/// exactly its text, wherever it appears: the same passage in a later request is found in the store.</item>
/// <item>The other text of the last message, which must be the user's, with the assistant's header is the final block.</item>
/// </list>
/// <para>
/// <see cref="ChatOptions"/>: <c>MaxOutputTokens</c>, <c>Temperature</c>, <c>TopP</c>, <c>TopK</c>,
/// <c>Seed</c> and <c>StopSequences</c> (added to the format's end-of-turn markers) are honoured;
/// <c>Instructions</c> become a system message before the others;
/// <c>ModelId</c>, when set, must be this client's; the attention mode is chosen with
/// <see cref="ModeProperty"/> in <c>AdditionalProperties</c> (<c>block</c>, <c>full</c> or
/// <c>block_one_pass</c>, or an <see cref="AttentionMode"/>). Tools, response formats other than
/// text, penalties and non-text content are refused with <see cref="NotSupportedException"/>.
/// </para>
/// <para>
/// <see cref="ChatResponse.Usage"/>: <c>InputTokenCount</c> is the prompt's tokens,
/// <c>CachedInputTokenCount</c> those of them whose states came from the store,
/// <c>OutputTokenCount</c> the generated tokens. The client does not own the session.
/// </para>
/// </remarks>
public sealed class BlockAttentionChatClient : IChatClient
{
    /// <summary>The <see cref="AIContent.AdditionalProperties"/> key that marks a <see cref="TextContent"/> as a passage (value <c>true</c>).</summary>
    public const string PassageProperty = "blockattention.passage";

    /// <summary>The <see cref="ChatOptions.AdditionalProperties"/> key that chooses the attention mode.</summary>
    public const string ModeProperty = "blockattention.mode";

    /// <summary>The provider name in <see cref="ChatClientMetadata"/>.</summary>
    public const string ProviderName = "blockattention";

    private readonly BlockSession _session;
    private readonly BlockAttentionChatClientOptions _options;
    private readonly ChatFormat _format;
    private readonly string _modelId;

    /// <summary>A client answering with <paramref name="session"/>, which it does not own.</summary>
    public BlockAttentionChatClient(BlockSession session, BlockAttentionChatClientOptions? options = null)
    {
        _session = session ?? throw new ArgumentNullException(nameof(session));
        _options = options ?? new BlockAttentionChatClientOptions();
        if (_options.DefaultMaxOutputTokens < 1)
        {
            throw new ArgumentException($"DefaultMaxOutputTokens must be at least 1, got {_options.DefaultMaxOutputTokens}", nameof(options));
        }

        _format = _options.Format ?? ChatFormat.FromChatTemplate(session.Model.Info.ChatTemplate) ?? ChatFormat.Tulu;
        _modelId = _options.ModelId ?? session.Model.Info.Family;
        Metadata = new ChatClientMetadata(ProviderName, providerUri: null, defaultModelId: _modelId);
    }

    /// <summary>The provider, and the model id this client reports.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <summary>The chat layout in use.</summary>
    public ChatFormat Format => _format;

    /// <summary>The session that answers.</summary>
    public BlockSession Session => _session;

    /// <summary>A text content marked as a passage: a local block holding exactly <paramref name="text"/>.</summary>
    public static TextContent Passage(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new TextContent(text) { AdditionalProperties = new() { [PassageProperty] = true } };
    }

    /// <summary>
    /// A retrieved passage as the RAG template writes it (<c>- Title: {title}\n{text}\n</c>), marked as
    /// a passage; it shares its stored states with <see cref="BlockPrompt.ForRag"/> and
    /// <see cref="BlockSession"/>'s precomputation of the same passage.
    /// </summary>
    public static TextContent Passage(RagPassage passage) => Passage(RagPromptTemplate.RenderPassage(passage));

    /// <summary>The prompt of blocks that <paramref name="messages"/> become (see the class remarks).</summary>
    /// <exception cref="NotSupportedException">A message holds content other than text, or has the tool role.</exception>
    /// <exception cref="ArgumentException">No messages, or the last one is not the user's.</exception>
    public BlockPrompt CreatePrompt(IEnumerable<AIChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var turns = new List<ChatTurn>();
        foreach (var message in messages)
        {
            ArgumentNullException.ThrowIfNull(message, nameof(messages));
            string role = message.Role.Value.ToLowerInvariant();
            if (role is not ("system" or "user" or "assistant"))
            {
                throw new NotSupportedException($"chat role '{message.Role}' is not supported; use system, user or assistant");
            }

            var parts = new List<ChatPart>();
            foreach (var content in message.Contents)
            {
                switch (content)
                {
                    case TextContent text when IsPassage(text):
                        parts.Add(ChatPart.Passage(text.Text ?? ""));
                        break;
                    case TextContent text:
                        parts.Add(ChatPart.FromText(text.Text ?? ""));
                        break;
                    case UsageContent or TextReasoningContent:
                        break; // bookkeeping of an earlier response, not prompt text
                    default:
                        throw new NotSupportedException(
                            $"{content.GetType().Name} in a {message.Role} message is not supported: BlockAttention takes text only");
                }
            }

            turns.Add(new ChatTurn(role, parts));
        }

        return BlockPrompt.FromChat(turns, _format, _options.PromptOptions);
    }

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var prompt = CreatePrompt(WithInstructions(messages, options));
        var generation = ToGenerationOptions(options, prompt);
        var result = await _session.GenerateAsync(prompt, generation, cancellationToken).ConfigureAwait(false);
        string id = NewId();
        var message = new AIChatMessage(ChatRole.Assistant, result.Text) { MessageId = id };
        return new ChatResponse(message)
        {
            ResponseId = id,
            ModelId = _modelId,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = MapFinishReason(result.FinishReason),
            Usage = UsageOf(result),
        };
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AIChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prompt = CreatePrompt(WithInstructions(messages, options));
        var generation = ToGenerationOptions(options, prompt);
        string id = NewId();
        var created = DateTimeOffset.UtcNow;
        await foreach (var chunk in _session.StreamAsync(prompt, generation, cancellationToken).ConfigureAwait(false))
        {
            if (chunk.Text.Length > 0)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, chunk.Text)
                {
                    ResponseId = id,
                    MessageId = id,
                    ModelId = _modelId,
                    CreatedAt = created,
                };
            }

            if (chunk.Result is { } result)
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(UsageOf(result))])
                {
                    ResponseId = id,
                    MessageId = id,
                    ModelId = _modelId,
                    CreatedAt = created,
                    FinishReason = MapFinishReason(result.FinishReason),
                };
            }
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
        {
            return null;
        }

        if (serviceType == typeof(ChatClientMetadata))
        {
            return Metadata;
        }

        if (serviceType == typeof(BlockSession))
        {
            return _session;
        }

        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Does nothing: the session belongs to the caller.</summary>
    public void Dispose()
    {
    }

    /// <summary>The generation options for a request: the client's defaults with <paramref name="options"/> applied.</summary>
    /// <exception cref="NotSupportedException">An option BlockAttention cannot honour is set.</exception>
    /// <exception cref="ArgumentException">An option's value is invalid, or it names another model.</exception>
    internal GenerationOptions ToGenerationOptions(ChatOptions? options, BlockPrompt prompt)
    {
        if (options is null)
        {
            return new GenerationOptions { Mode = _options.DefaultMode, MaxNewTokens = _options.DefaultMaxOutputTokens };
        }

        if (options.Tools is { Count: > 0 })
        {
            throw new NotSupportedException("tools (function calling) are not supported by BlockAttention");
        }

        if (options.ResponseFormat is not null and not ChatResponseFormatText)
        {
            throw new NotSupportedException("only text responses are supported; JSON response formats are not");
        }

        if (options.FrequencyPenalty is not null || options.PresencePenalty is not null)
        {
            throw new NotSupportedException("frequency and presence penalties are not supported by BlockAttention");
        }

        if (options.ModelId is { } modelId && !string.Equals(modelId, _modelId, StringComparison.Ordinal))
        {
            throw new ArgumentException($"ChatOptions.ModelId is '{modelId}', but this client serves '{_modelId}'", nameof(options));
        }

        if (options.Seed is long seed && (seed < int.MinValue || seed > int.MaxValue))
        {
            throw new ArgumentException($"ChatOptions.Seed must fit in 32 bits, got {seed}", nameof(options));
        }

        var generation = new GenerationOptions
        {
            Mode = ModeOf(options),
            MaxNewTokens = options.MaxOutputTokens ?? _options.DefaultMaxOutputTokens,
            Temperature = options.Temperature ?? 0f,
            TopP = options.TopP ?? 1f,
            TopK = options.TopK ?? 0,
            Seed = options.Seed is long s ? (int)s : null,
            StopStrings = options.StopSequences is { Count: > 0 } stops ? [.. prompt.StopStrings, .. stops] : null,
        };
        generation.Validate();
        return generation;
    }

    /// <summary><see cref="ChatOptions.Instructions"/> become a system message before the others.</summary>
    private static IEnumerable<AIChatMessage> WithInstructions(IEnumerable<AIChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return string.IsNullOrEmpty(options?.Instructions) ? messages : messages.Prepend(new AIChatMessage(ChatRole.System, options.Instructions));
    }

    private AttentionMode ModeOf(ChatOptions options)
    {
        if (options.AdditionalProperties is null || !options.AdditionalProperties.TryGetValue(ModeProperty, out object? value) || value is null)
        {
            return _options.DefaultMode;
        }

        return value switch
        {
            AttentionMode mode when Enum.IsDefined(mode) => mode,
            string text => ParseMode(text),
            _ => throw new ArgumentException($"{ModeProperty} must be block, full or block_one_pass, got '{value}'", nameof(options)),
        };
    }

    /// <summary>Parses <c>block</c>, <c>full</c> or <c>block_one_pass</c> (any case; <c>BlockOnePass</c> also accepted).</summary>
    internal static AttentionMode ParseMode(string text) => text.Replace("_", "", StringComparison.Ordinal).ToLowerInvariant() switch
    {
        "block" => AttentionMode.Block,
        "full" => AttentionMode.Full,
        "blockonepass" => AttentionMode.BlockOnePass,
        _ => throw new ArgumentException($"{ModeProperty} must be block, full or block_one_pass, got '{text}'"),
    };

    private static bool IsPassage(TextContent text) =>
        text.AdditionalProperties is { } properties && properties.TryGetValue(PassageProperty, out object? value) && value switch
        {
            bool flag => flag,
            string s => bool.TryParse(s, out bool parsed) && parsed,
            System.Text.Json.JsonElement { ValueKind: System.Text.Json.JsonValueKind.True } => true,
            _ => false,
        };

    private static UsageDetails UsageOf(GenerationResult result) => new()
    {
        InputTokenCount = result.PromptTokens,
        CachedInputTokenCount = result.PromptTokens - result.ComputedPromptTokens,
        OutputTokenCount = result.TokenIds.Count,
        TotalTokenCount = (long)result.PromptTokens + result.TokenIds.Count,
    };

    private static AIFinishReason MapFinishReason(FinishReason reason) => reason switch
    {
        FinishReason.Length => AIFinishReason.Length,
        _ => AIFinishReason.Stop,
    };

    private static string NewId() => "chatcmpl-" + Guid.NewGuid().ToString("N");
}
