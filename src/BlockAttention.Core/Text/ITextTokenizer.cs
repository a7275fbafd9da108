namespace BlockAttention.Text;

/// <summary>Turns text into token ids and back (placeholder until the tokenizer branch lands).</summary>
public interface ITextTokenizer
{
    /// <summary>Encodes without BOS or EOS.</summary>
    IReadOnlyList<int> Encode(string text);

    /// <summary>Decodes ids to text.</summary>
    string Decode(IReadOnlyList<int> ids);
}
