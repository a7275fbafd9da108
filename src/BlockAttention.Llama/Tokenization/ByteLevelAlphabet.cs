namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// The byte-to-character table of byte-level BPE (GPT-2's <c>bytes_to_unicode</c>): every byte is spelled as
/// one printable character, so a vocabulary of byte strings can be stored as JSON text (a space is <c>Ġ</c>).
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] s_byteToChar = CreateTable();

    /// <summary>Gets the character that spells byte <paramref name="value"/>.</summary>
    public static char ToChar(byte value) => s_byteToChar[value];

    /// <summary>Gets all 256 characters, in byte order.</summary>
    public static ReadOnlySpan<char> Characters => s_byteToChar;

    private static char[] CreateTable()
    {
        // Printable Latin-1 bytes stand for themselves; the others (controls, space, soft hyphen) are
        // shifted past 255 in byte order, exactly as the reference table does.
        var table = new char[256];
        int shifted = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)(256 + shifted++);
        }

        return table;
    }
}
