using System.Text.RegularExpressions;

namespace BlockAttention.Llama.Tokenization;

/// <summary>Limits a <see cref="LlamaTokenizer"/> enforces on the text it encodes.</summary>
public sealed class LlamaTokenizerOptions
{
    /// <summary>The default of <see cref="RegexMatchTimeout"/>: 2 seconds.</summary>
    public static readonly TimeSpan DefaultRegexMatchTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The default of <see cref="MaxInputCharacters"/>: 4,194,304 (4 Mi) UTF-16 characters.</summary>
    public const int DefaultMaxInputCharacters = 4 * 1024 * 1024;

    /// <summary>
    /// Gets how long the pre-tokenizer regex of <c>tokenizer.json</c> may search for one match before
    /// encoding fails with a <see cref="TokenizerFormatException"/> that names the file. Default 2 seconds.
    /// </summary>
    /// <remarks>
    /// The Llama 3 pattern finds each match in time linear in its length (milliseconds even for a megabyte of
    /// one character), so the limit only stops a pattern that backtracks catastrophically, such as
    /// <c>(a+)+b</c>, from hanging the caller. <see cref="Regex.InfiniteMatchTimeout"/> turns it off.
    /// </remarks>
    public TimeSpan RegexMatchTimeout { get; init; } = DefaultRegexMatchTimeout;

    /// <summary>
    /// Gets the most UTF-16 characters one <see cref="LlamaTokenizer.Encode"/> call accepts; longer text is refused
    /// with an <see cref="ArgumentException"/> before any work. Default 4,194,304 (about 4 MB of ASCII text, or
    /// about a million tokens of English).
    /// </summary>
    /// <remarks>
    /// Encoding takes time linear in the text, and working memory of up to about 50 bytes per UTF-8 byte of its
    /// longest piece (a run of one character class is one piece): the limit bounds that memory.
    /// </remarks>
    public int MaxInputCharacters { get; init; } = DefaultMaxInputCharacters;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid option.</summary>
    internal void Validate()
    {
        if (RegexMatchTimeout != Regex.InfiniteMatchTimeout
            && (RegexMatchTimeout <= TimeSpan.Zero || RegexMatchTimeout.TotalMilliseconds > int.MaxValue - 1))
        {
            throw new ArgumentOutOfRangeException(nameof(RegexMatchTimeout), RegexMatchTimeout,
                "RegexMatchTimeout must be positive and under about 24 days, or Regex.InfiniteMatchTimeout");
        }

        if (MaxInputCharacters < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxInputCharacters), MaxInputCharacters, "MaxInputCharacters must be at least 1");
        }
    }
}
