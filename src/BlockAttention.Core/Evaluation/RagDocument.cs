namespace BlockAttention.Evaluation;

/// <summary>A retrieved document of a RAG record.</summary>
/// <param name="Title">The document's title.</param>
/// <param name="Text">The document's text.</param>
/// <param name="Score">The retriever's score, when the data has one (the reference orders documents by it, most relevant first).</param>
public sealed record RagDocument(string Title, string Text, double? Score = null);
