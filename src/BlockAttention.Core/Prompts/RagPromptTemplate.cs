namespace BlockAttention.Prompts;

/// <summary>
/// The RAG prompt layout of the Block-Attention reference server (and of the checkpoints
/// fine-tuned with it, such as Tulu3-Block-FT). <c>&lt;|user|&gt;</c> and <c>&lt;|assistant|&gt;</c>
/// are plain text here, not special tokens.
/// </summary>
public static class RagPromptTemplate
{
    /// <summary>The reference's instruction paragraph.</summary>
    public const string DefaultInstruction =
        "You are an intelligent AI assistant. Please answer questions based on the user's instructions. " +
        "Below are some reference documents that may help you in answering the user's question.";

    /// <summary>
    /// The blocks: <c>&lt;|user|&gt;\n{instruction}\n\n</c>; one <c>- Title: {title}\n{text}\n</c> per
    /// passage; and the final block with the question.
    /// </summary>
    public static IReadOnlyList<string> Render(IEnumerable<RagPassage> passages, string question, string? instruction = null)
    {
        ArgumentNullException.ThrowIfNull(passages);
        ArgumentNullException.ThrowIfNull(question);
        var blocks = new List<string> { $"<|user|>\n{instruction ?? DefaultInstruction}\n\n" };
        foreach (var passage in passages)
        {
            ArgumentNullException.ThrowIfNull(passage);
            blocks.Add(RenderPassage(passage));
        }

        blocks.Add(
            "\n\nPlease write a high-quality answer for the given question using only the provided search documents " +
            $"(some of which might be irrelevant).\nQuestion: {question}\n<|assistant|>\n");
        return blocks;
    }

    /// <summary>One passage's block: <c>- Title: {title}\n{text}\n</c>.</summary>
    public static string RenderPassage(RagPassage passage)
    {
        ArgumentNullException.ThrowIfNull(passage);
        return $"- Title: {passage.Title}\n{passage.Text}\n";
    }
}
