namespace BlockAttention.Prompts;

/// <summary>
/// A prompt split into blocks. Every block but the last is a <em>local</em> block: encoded on its
/// own from position 0, its key/value states cacheable and reusable at any position. The last is
/// the <em>final</em> block, which attends to everything before it.
/// </summary>
public sealed class BlockPrompt
{
    private BlockPrompt(IReadOnlyList<PromptBlock> blocks) => Blocks = blocks;

    /// <summary>The blocks in prompt order; the last is the final block.</summary>
    public IReadOnlyList<PromptBlock> Blocks { get; }

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
        FromBlocks(RagPromptTemplate.Render(passages, question, instruction));

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
    public static BlockPrompt FromChat(IEnumerable<ChatMessage> messages) => FromBlocks(ChatPromptTemplate.Render(messages));
}
