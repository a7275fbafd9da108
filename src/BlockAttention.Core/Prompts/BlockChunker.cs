namespace BlockAttention.Prompts;

/// <summary>
/// The reference's automatic chunking of text into blocks: split on the first delimiter of
/// <c>\n\n</c>, <c>---</c>, <c>===</c>, <c>\n\t</c>, <c>\n</c> that occurs in the text.
/// </summary>
/// <remarks>
/// Each delimiter stays at the end of the chunk it closes, so the chunks concatenate back to the
/// exact original text: a full-attention run over the same prompt then sees the same text.
/// </remarks>
public static class BlockChunker
{
    /// <summary>The delimiters, in order of preference.</summary>
    public static IReadOnlyList<string> Delimiters { get; } = ["\n\n", "---", "===", "\n\t", "\n"];

    /// <summary>Splits <paramref name="text"/>; a text with no delimiter is one chunk, an empty text none.</summary>
    public static IReadOnlyList<string> Split(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0)
        {
            return [];
        }

        string? delimiter = Delimiters.FirstOrDefault(d => text.Contains(d, StringComparison.Ordinal));
        if (delimiter is null)
        {
            return [text];
        }

        var chunks = new List<string>();
        int start = 0;
        while (start < text.Length)
        {
            int found = text.IndexOf(delimiter, start, StringComparison.Ordinal);
            int end = found < 0 ? text.Length : found + delimiter.Length;
            chunks.Add(text[start..end]);
            start = end;
        }

        return chunks;
    }
}
