using System.Buffers;
using System.Text;
using System.Text.RegularExpressions;

namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// Splits text the way Hugging Face tokenizers do before BPE: added tokens first, then the pre-tokenizer's
/// <c>Split</c> regex with the <c>Isolated</c> behaviour (every match is a piece, and so is any text between
/// matches).
/// </summary>
/// <remarks>
/// <para>
/// The reference runs its regex over code points; .NET runs it over UTF-16 units, where a character outside
/// the Basic Multilingual Plane is two surrogates that match neither <c>\p{L}</c> nor <c>\p{N}</c>. So text
/// that contains surrogates is matched on a copy where each such character is replaced by one BMP stand-in of
/// the same Unicode category, and the match offsets are mapped back. Without it, "𝟙𝟚" or "😀abc" split
/// differently and get different ids.
/// </para>
/// <para>
/// Everything here is linear in the text: the added-token search, the folding, and the regex when it finds
/// each match in time linear in the match (as the Llama 3 pattern does). A pattern that backtracks
/// catastrophically is stopped by the regex's match timeout and reported against the file it came from.
/// </para>
/// </remarks>
internal sealed class PreTokenSplitter
{
    private readonly Regex _split;
    private readonly AddedTokenMatcher _addedTokens;
    private readonly string _tokenizerJsonPath;

    /// <param name="split">The pre-tokenizer regex, built with a match timeout.</param>
    /// <param name="addedTokens">The added tokens to split out first.</param>
    /// <param name="tokenizerJsonPath">The file the regex came from, named when it times out.</param>
    public PreTokenSplitter(Regex split, AddedTokenMatcher addedTokens, string tokenizerJsonPath)
    {
        _split = split;
        _addedTokens = addedTokens;
        _tokenizerJsonPath = tokenizerJsonPath;
    }

    /// <summary>Splits <paramref name="text"/> into pieces, in order, covering all of it.</summary>
    /// <exception cref="TokenizerFormatException">The regex took longer than its match timeout.</exception>
    public List<PreToken> Split(ReadOnlySpan<char> text)
    {
        try
        {
            return SplitCore(text);
        }
        catch (RegexMatchTimeoutException e)
        {
            throw new TokenizerFormatException(_tokenizerJsonPath,
                $"pre_tokenizer.pretokenizers[0].pattern.Regex took longer than {e.MatchTimeout.TotalMilliseconds:0.###} ms to find one match " +
                $"in a text of {text.Length} characters: the pattern backtracks catastrophically on such text. Use a pattern that does not, " +
                $"or raise {nameof(LlamaTokenizerOptions)}.{nameof(LlamaTokenizerOptions.RegexMatchTimeout)}",
                e);
        }
    }

    private List<PreToken> SplitCore(ReadOnlySpan<char> text)
    {
        var pieces = new List<PreToken>();
        int position = 0;
        while (_addedTokens.TryFind(text, position, out int index, out int length, out int id))
        {
            SplitOrdinary(text[position..index], position, pieces);
            pieces.Add(new PreToken(index, length, id));
            position = index + length;
        }

        SplitOrdinary(text[position..], position, pieces);
        return pieces;
    }

    private void SplitOrdinary(ReadOnlySpan<char> text, int offset, List<PreToken> pieces)
    {
        if (text.IsEmpty)
        {
            return;
        }

        if (text.ContainsAnyInRange('\uD800', '\uDFFF'))
        {
            SplitByCodePoint(text, offset, pieces);
            return;
        }

        int end = 0;
        foreach (ValueMatch match in _split.EnumerateMatches(text))
        {
            AddIsolated(pieces, offset, end, match.Index, match.Length);
            end = match.Index + match.Length;
        }

        AddGap(pieces, offset, end, text.Length);
    }

    private void SplitByCodePoint(ReadOnlySpan<char> text, int offset, List<PreToken> pieces)
    {
        char[] folded = ArrayPool<char>.Shared.Rent(text.Length);
        int[] starts = ArrayPool<int>.Shared.Rent(text.Length + 1);
        try
        {
            // starts[k] is the UTF-16 offset of code point k; starts[count] is the end of the text.
            int count = 0;
            for (int i = 0; i < text.Length; count++)
            {
                starts[count] = i;
                if (Rune.DecodeFromUtf16(text[i..], out Rune rune, out int used) == OperationStatus.Done && used == 2)
                {
                    folded[count] = CategoryStandIns.For(Rune.GetUnicodeCategory(rune));
                }
                else
                {
                    // A BMP character stands for itself; so does a lone surrogate (the reference cannot hold one).
                    folded[count] = text[i];
                    used = 1;
                }

                i += used;
            }

            starts[count] = text.Length;

            int end = 0;
            foreach (ValueMatch match in _split.EnumerateMatches(folded.AsSpan(0, count)))
            {
                int start = starts[match.Index];
                int matchEnd = starts[match.Index + match.Length];
                AddIsolated(pieces, offset, end, start, matchEnd - start);
                end = matchEnd;
            }

            AddGap(pieces, offset, end, text.Length);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(folded);
            ArrayPool<int>.Shared.Return(starts);
        }
    }

    private static void AddIsolated(List<PreToken> pieces, int offset, int previousEnd, int matchIndex, int matchLength)
    {
        AddGap(pieces, offset, previousEnd, matchIndex);
        if (matchLength > 0)
        {
            pieces.Add(new PreToken(offset + matchIndex, matchLength, -1));
        }
    }

    private static void AddGap(List<PreToken> pieces, int offset, int start, int end)
    {
        if (end > start)
        {
            pieces.Add(new PreToken(offset + start, end - start, -1));
        }
    }
}
