namespace BlockAttention.Text;

/// <summary>
/// Decodes generated token ids one at a time into text pieces that never end in half a character.
/// </summary>
/// <remarks>
/// <para>
/// A byte-level token can hold part of a UTF-8 character (an emoji is often split over two or three tokens),
/// so decoding each token alone would print U+FFFD. This decoder holds text back while the decoded tail ends
/// in U+FFFD and releases it once the character is complete.
/// </para>
/// <para>
/// It decodes a short moving window, not the whole history (the prefix/read offset scheme of Hugging Face's
/// <c>TextStreamer</c> and vLLM's incremental detokenizer): the window starts at the previous emitted
/// chunk, which gives tokenizers whose decoding depends on context (such as SentencePiece dropping the
/// leading space of the first token) the context they need, and it moves on after every emitted chunk.
/// Each step therefore costs time proportional to the window, not to the text so far.
/// </para>
/// <para>The concatenation of all returned pieces and <see cref="Flush"/> equals the decoding of all ids at once.</para>
/// </remarks>
public sealed class StreamingTextDecoder
{
    private const char ReplacementCharacter = '\uFFFD';

    private readonly ITextTokenizer _tokenizer;
    private int[] _ids = new int[64];
    private int _count;

    // Tokens [_prefixOffset, _readOffset) were emitted in the previous chunk and serve as context;
    // tokens [_readOffset, _count) are pending. _prefixText is the decoding of the context tokens.
    private int _prefixOffset;
    private int _readOffset;
    private string _prefixText = string.Empty;

    /// <summary>Creates a decoder that decodes with <paramref name="tokenizer"/>.</summary>
    /// <param name="tokenizer">The tokenizer whose ids will be appended.</param>
    public StreamingTextDecoder(ITextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        _tokenizer = tokenizer;
    }

    /// <summary>Gets the number of ids appended so far.</summary>
    public int TokenCount => _count;

    /// <summary>Appends one generated id and returns the text it completes.</summary>
    /// <param name="tokenId">The next token id.</param>
    /// <returns>The newly completed text; empty while a character is still incomplete.</returns>
    public string Append(int tokenId)
    {
        if (_count == _ids.Length)
        {
            Array.Resize(ref _ids, (int)Math.Min(_ids.Length * 2L, Array.MaxLength)); // doubled in 64 bits
        }

        _ids[_count++] = tokenId;

        string text = Decode(_prefixOffset, _count);

        // A trailing U+FFFD is most likely a character whose remaining bytes are in tokens not yet generated.
        // Text that did not grow is held too: the new token may only have added bytes to such a character.
        if (text.Length <= _prefixText.Length || text[^1] == ReplacementCharacter)
        {
            return string.Empty;
        }

        string piece = text[_prefixText.Length..];
        _prefixOffset = _readOffset;
        _readOffset = _count;
        _prefixText = Decode(_prefixOffset, _readOffset);
        return piece;
    }

    /// <summary>
    /// Returns the text still held back (at the end of generation: an incomplete character decodes to
    /// U+FFFD, as the full decoding would show it) and starts the next piece from a clean state.
    /// </summary>
    /// <returns>The remaining text; empty when nothing is pending.</returns>
    public string Flush()
    {
        if (_readOffset == _count)
        {
            return string.Empty;
        }

        string text = Decode(_prefixOffset, _count);
        string piece = text.Length > _prefixText.Length ? text[_prefixText.Length..] : string.Empty;
        _prefixOffset = _count;
        _readOffset = _count;
        _prefixText = string.Empty;
        return piece;
    }

    private string Decode(int start, int end) =>
        start == end ? string.Empty : _tokenizer.Decode(new ArraySegment<int>(_ids, start, end - start));
}
