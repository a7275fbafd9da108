namespace BlockAttention.Prompts;

/// <summary>One turn of a conversation, made of parts: text, and passages that become blocks of their own.</summary>
/// <param name="Role">"system", "user" or "assistant".</param>
/// <param name="Parts">The turn's parts in order.</param>
public sealed record ChatTurn(string Role, IReadOnlyList<ChatPart> Parts)
{
    /// <summary>A turn with one text part.</summary>
    public ChatTurn(string role, string text)
        : this(role, [ChatPart.FromText(text)])
    {
    }
}

/// <summary>
/// One part of a <see cref="ChatTurn"/>. A passage is always a block of its own with exactly its
/// text, so the same passage is found in the store whatever conversation it appears in. Text
/// parts are written with the turn markers around them.
/// </summary>
/// <param name="Text">The part's text, used as given.</param>
/// <param name="IsPassage">True for a passage (a block of its own), false for ordinary text.</param>
public sealed record ChatPart(string Text, bool IsPassage)
{
    /// <summary>Ordinary text of a turn.</summary>
    public static ChatPart FromText(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), false);

    /// <summary>A passage block with exactly <paramref name="text"/>.</summary>
    public static ChatPart Passage(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), true);

    /// <summary>
    /// A retrieved passage, written as the RAG template writes it (<c>- Title: {title}\n{text}\n</c>),
    /// so that it shares its stored states with <see cref="BlockPrompt.ForRag"/> and
    /// <c>BlockSession.PrecomputeAsync</c>.
    /// </summary>
    public static ChatPart Passage(RagPassage passage) => new(RagPromptTemplate.RenderPassage(passage), true);
}
