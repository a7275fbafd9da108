using BlockAttention.Generation;

namespace BlockAttention.Prompts;

/// <summary>
/// A prompt split into blocks. Every block but the last is a <em>local</em> block: encoded on its
/// own from position 0, its key/value states cacheable and reusable at any position. The last is
/// the <em>final</em> block, which attends to everything before it.
/// </summary>
public sealed class BlockPrompt
{
    private BlockPrompt(IReadOnlyList<PromptBlock> blocks, IReadOnlyList<string>? stopStrings = null)
    {
        Blocks = blocks;
        StopStrings = stopStrings ?? GenerationOptions.DefaultStopStrings;
    }

    /// <summary>The blocks in prompt order; the last is the final block.</summary>
    public IReadOnlyList<PromptBlock> Blocks { get; }

    /// <summary>
    /// The stop strings that suit this prompt's layout, used when
    /// <see cref="GenerationOptions.StopStrings"/> is null: the reference's list with
    /// <c>Question:</c> for <see cref="ForRag"/>, the chat format's end-of-turn markers for a
    /// conversation, <see cref="GenerationOptions.DefaultStopStrings"/> otherwise.
    /// </summary>
    public IReadOnlyList<string> StopStrings { get; }

    /// <summary>The final block.</summary>
    public PromptBlock FinalBlock => Blocks[^1];

    /// <summary>The local blocks (all but the last).</summary>
    public IEnumerable<PromptBlock> LocalBlocks => Blocks.Take(Blocks.Count - 1);

    /// <summary>A prompt from block texts; the last text is the final block.</summary>
    /// <exception cref="ArgumentException">No blocks were given.</exception>
    public static BlockPrompt FromBlocks(IEnumerable<string> blocks) =>
        FromParts((blocks ?? throw new ArgumentNullException(nameof(blocks))).Select(PromptBlock.FromText));

    /// <summary>A prompt from block texts; the last text is the final block.</summary>
    public static BlockPrompt FromBlocks(params string[] blocks) => FromBlocks((IEnumerable<string>)blocks);

    /// <summary>A prompt from pre-tokenized blocks (no BOS is added); the last is the final block.</summary>
    public static BlockPrompt FromTokenizedBlocks(IEnumerable<IEnumerable<int>> blocks) =>
        FromParts((blocks ?? throw new ArgumentNullException(nameof(blocks))).Select(PromptBlock.FromTokens));

    /// <summary>A prompt from blocks given either way; the last is the final block.</summary>
    public static BlockPrompt FromParts(IEnumerable<PromptBlock> blocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        var list = blocks.ToList();
        if (list.Count == 0)
        {
            throw new ArgumentException("a prompt needs at least one block (the final block)", nameof(blocks));
        }

        if (list.Any(b => b is null))
        {
            throw new ArgumentException("a prompt block is null", nameof(blocks));
        }

        return new BlockPrompt(list);
    }

    /// <summary>
    /// The reference RAG prompt of Block-Attention: an instruction block, one block per passage
    /// (<c>- Title: {title}\n{text}\n</c>), and the question as the final block.
    /// </summary>
    public static BlockPrompt ForRag(IEnumerable<RagPassage> passages, string question, string? instruction = null) =>
        FromBlocks(RagPromptTemplate.Render(passages, question, instruction)).WithStopStrings(GenerationOptions.ReferenceStopStrings);

    /// <summary>
    /// Splits <paramref name="context"/> into local blocks with the reference's delimiter chunking
    /// (see <see cref="BlockChunker"/>) and appends <paramref name="finalBlock"/> whole.
    /// </summary>
    public static BlockPrompt FromText(string context, string finalBlock)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(finalBlock);
        return FromBlocks([.. BlockChunker.Split(context), finalBlock]);
    }

    /// <summary>
    /// A chat conversation: earlier turns are rendered and chunked into local blocks, the last user
    /// turn (with the assistant header after it) is kept whole as the final block. See
    /// <see cref="ChatPromptTemplate"/> for the rendering.
    /// </summary>
    public static BlockPrompt FromChat(IEnumerable<ChatMessage> messages) =>
        FromBlocks(ChatPromptTemplate.Render(messages)).WithStopStrings(ChatFormat.Tulu.StopStrings);

    /// <summary>
    /// A conversation written in <paramref name="format"/>: every text part of an earlier turn is
    /// a local block, every passage a local block with exactly its text, and the last turn (which
    /// must be the user's) with the assistant's header is the final block.
    /// </summary>
    /// <exception cref="ArgumentException">No turns, an unknown role, or the last turn is not the user's.</exception>
    public static BlockPrompt FromChat(IEnumerable<ChatTurn> turns, ChatFormat format, ChatPromptOptions? options = null) =>
        FromBlocks(ChatTurnRenderer.Render(turns, format, options)).WithStopStrings(format.StopStrings);

    /// <summary>
    /// Chat history, retrieved passages and a question in one prompt: the history's turns, then a
    /// user turn holding one block per passage (written as <see cref="RagPromptTemplate.RenderPassage"/>
    /// does) followed by the question, which is the final block.
    /// </summary>
    public static BlockPrompt ForChat(IEnumerable<ChatMessage> history, IEnumerable<RagPassage> passages, string question, ChatFormat format,
        ChatPromptOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(passages);
        ArgumentNullException.ThrowIfNull(question);
        var turns = history.Select(m => new ChatTurn(
            (m ?? throw new ArgumentException("a history message is null", nameof(history))).Role, m.Content)).ToList();
        turns.Add(new ChatTurn("user", [.. passages.Select(ChatPart.Passage), ChatPart.FromText(question)]));
        return FromChat(turns, format, options);
    }

    /// <summary>This prompt's blocks with other default stop strings.</summary>
    public BlockPrompt WithStopStrings(IReadOnlyList<string> stopStrings)
    {
        ArgumentNullException.ThrowIfNull(stopStrings);
        if (stopStrings.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("stop strings must not be null or empty", nameof(stopStrings));
        }

        return new BlockPrompt(Blocks, [.. stopStrings]);
    }
}
