using System.Buffers;

namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// Finds added tokens (such as <c>&lt;|eot_id|&gt;</c>) in text, leftmost first and the longest at a
/// position, as Hugging Face's added vocabulary does before the pre-tokenizer sees the text.
/// </summary>
/// <remarks>
/// The tokens form a trie, so a position costs at most the length of the longest token whatever their
/// number: Llama 3 has 256 tokens that start with <c>&lt;|</c>, and comparing each of them at every
/// <c>&lt;</c> of a hostile text would cost hundreds of comparisons per character.
/// </remarks>
internal sealed class AddedTokenMatcher
{
    private readonly SearchValues<char> _firstChars;

    // Node 0 is the root. Children[node] maps the next character to a node; TokenIds[node] is the id of the
    // token that ends there, or -1.
    private readonly List<Dictionary<char, int>> _children = [];
    private readonly List<int> _tokenIds = [];

    public AddedTokenMatcher(IEnumerable<KeyValuePair<string, int>> tokens)
    {
        AddNode();
        foreach ((string content, int id) in tokens)
        {
            if (content.Length == 0)
            {
                continue;
            }

            int node = 0;
            foreach (char c in content)
            {
                if (!_children[node].TryGetValue(c, out int child))
                {
                    child = AddNode();
                    _children[node][c] = child;
                }

                node = child;
            }

            _tokenIds[node] = id;
        }

        _firstChars = SearchValues.Create([.. _children[0].Keys]);
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
            if (TryMatchAt(text, position, out length, out id))
            {
                index = position;
                return true;
            }

            position++;
        }

        (index, length, id) = (-1, 0, -1);
        return false;
    }

    private bool TryMatchAt(ReadOnlySpan<char> text, int position, out int length, out int id)
    {
        (length, id) = (0, -1);
        int node = 0;
        for (int i = position; i < text.Length && _children[node].TryGetValue(text[i], out node); i++)
        {
            if (_tokenIds[node] >= 0)
            {
                (length, id) = (i - position + 1, _tokenIds[node]);
            }
        }

        return id >= 0;
    }

    private int AddNode()
    {
        _children.Add([]);
        _tokenIds.Add(-1);
        return _children.Count - 1;
    }
}
