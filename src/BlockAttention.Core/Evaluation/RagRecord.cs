using BlockAttention.Prompts;

namespace BlockAttention.Evaluation;

/// <summary>
/// One RAG evaluation record as the Block-Attention reference prepares them: a question, its gold
/// answers, and the retrieved documents in the order the prompt shows them.
/// </summary>
public sealed record RagRecord
{
    /// <summary>The question.</summary>
    public required string Question { get; init; }

    /// <summary>The gold answers; a prediction is correct when it contains any of them (see <see cref="RagAnswerMetric"/>).</summary>
    public required IReadOnlyList<string> Answers { get; init; }

    /// <summary>The retrieved documents, in prompt order.</summary>
    public required IReadOnlyList<RagDocument> Documents { get; init; }

    /// <summary>
    /// The reference RAG prompt: the instruction block, one <c>- Title: {title}\n{text}\n</c> block
    /// per document in the given order, and the question as the final block (see <see cref="RagPromptTemplate"/>).
    /// </summary>
    /// <param name="instruction">The instruction paragraph; null uses the reference's.</param>
    public BlockPrompt ToPrompt(string? instruction = null) =>
        BlockPrompt.ForRag(Documents.Select(d => new RagPassage(d.Title, d.Text)), Question, instruction);

    /// <summary>Whether <paramref name="generated"/> answers this record correctly, by the reference metric.</summary>
    public bool IsAnsweredBy(string generated) => RagAnswerMetric.IsCorrect(generated, Answers);
}
