using System.Buffers;

namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// Finds added tokens (such as <c>&lt;|eot_id|&gt;</c>) in text, leftmost first and the longest at a
/// position, as Hugging Face's added vocabulary does before the pre-tokenizer sees the text.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly SearchValues<char> _firstChars;
    private readonly Dictionary<char, (string Content, int Id)[]> _byFirstChar;

    public AddedTokenMatcher(IEnumerable<KeyValuePair<string, int>> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Key.Length > 0)
            .GroupBy(t => t.Key[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Key.Length).Select(t => (t.Key, t.Value)).ToArray());
        _firstChars = SearchValues.Create([.. _byFirstChar.Keys]);
    }

    /// <summary>Finds the first added token at or after <paramref name="start"/>.</summary>
    /// <returns><see langword="true"/> and its position, length and id when one occurs.</returns>
    public bool TryFind(ReadOnlySpan<char> text, int start, out int index, out int length, out int id)
    {
        int position = start;
        while (position < text.Length)
        {
            int found = text[position..].IndexOfAny(_firstChars);
            if (found < 0)
            {
                break;
            }

            position += found;
            ReadOnlySpan<char> rest = text[position..];
            foreach ((string content, int tokenId) in _byFirstChar[text[position]])
            {
                if (rest.StartsWith(content, StringComparison.Ordinal))
                {
                    (index, length, id) = (position, content.Length, tokenId);
                    return true;
                }
            }

            position++;
        }

        (index, length, id) = (-1, 0, -1);
        return false;
    }
}
