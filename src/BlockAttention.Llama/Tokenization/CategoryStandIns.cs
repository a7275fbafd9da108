using System.Globalization;

namespace BlockAttention.Llama.Tokenization;

/// <summary>One BMP character per Unicode general category, used to stand in for a supplementary-plane character.</summary>
internal static class CategoryStandIns
{
    // Indexed by UnicodeCategory. No stand-in is an ASCII character, so none can complete a literal of a split
    // pattern (such as the "'s" contraction) by accident; the only white-space stand-ins are for the separator
    // categories, which no supplementary character has.
    private static readonly char[] s_standIns =
    [
        '\u2C00', // UppercaseLetter (GLAGOLITIC CAPITAL LETTER AZU)
        '\u2C30', // LowercaseLetter (GLAGOLITIC SMALL LETTER AZU)
        '\u01C5', // TitlecaseLetter
        '\u02B0', // ModifierLetter
        '\u4E00', // OtherLetter
        '\u0300', // NonSpacingMark
        '\u0903', // SpacingCombiningMark
        '\u20DD', // EnclosingMark
        '\u0660', // DecimalDigitNumber (ARABIC-INDIC DIGIT ZERO)
        '\u2160', // LetterNumber
        '\u00B2', // OtherNumber
        '\u2000', // SpaceSeparator (no supplementary character has it)
        '\u2028', // LineSeparator (idem)
        '\u2029', // ParagraphSeparator (idem)
        '\u0080', // Control (idem)
        '\u2060', // Format
        '\uD800', // Surrogate (never produced for a decoded rune)
        '\uE000', // PrivateUse
        '\u203F', // ConnectorPunctuation
        '\u2010', // DashPunctuation
        '\u2045', // OpenPunctuation
        '\u2046', // ClosePunctuation
        '\u2039', // InitialQuotePunctuation
        '\u203A', // FinalQuotePunctuation
        '\u2042', // OtherPunctuation
        '\u2200', // MathSymbol
        '\u20A0', // CurrencySymbol
        '\u02C2', // ModifierSymbol
        '\u00A6', // OtherSymbol
        '\u0378', // OtherNotAssigned
    ];

    public static char For(UnicodeCategory category) => s_standIns[(int)category];
}
