namespace BlockAttention.Text;

/// <summary>
/// Turns text into a model's token ids and back. This is all that the model-agnostic runtime needs of a
/// tokenizer: it tokenizes each prompt block on its own and decodes generated ids.
/// </summary>
public interface ITextTokenizer
{
    /// <summary>
    /// Encodes <paramref name="text"/> without adding BOS or EOS. Special-token text inside the string
    /// (such as <c>&lt;|eot_id|&gt;</c>) maps to its single special id.
    /// </summary>
    /// <param name="text">The text to encode; may be empty.</param>
    /// <returns>The token ids, in order.</returns>
    IReadOnlyList<int> Encode(string text);

    /// <summary>
    /// Decodes <paramref name="ids"/> to text, special tokens included as their text. Bytes that do not form
    /// valid UTF-8 (for example half of a character) decode to U+FFFD.
    /// </summary>
    /// <param name="ids">The token ids to decode.</param>
    /// <returns>The decoded text.</returns>
    string Decode(IReadOnlyList<int> ids);
}
