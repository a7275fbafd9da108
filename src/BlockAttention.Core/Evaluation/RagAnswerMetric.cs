using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace BlockAttention.Evaluation;

/// <summary>
/// The RAG accuracy metric of the Block-Attention reference evaluation: a prediction is correct
/// when any gold answer, after SQuAD-style normalisation, is a substring of the normalised
/// prediction. The dataset score is the mean over records, times 100.
/// </summary>
/// <remarks>
/// Normalisation, in this order (as SQuAD's <c>normalize_answer</c>): lower-case; delete ASCII
/// punctuation (Python's <c>string.punctuation</c>; other punctuation such as curly quotes or
/// dashes stays); replace the whole words <c>a</c>, <c>an</c>, <c>the</c> by a space; split on
/// whitespace and join with single spaces. Because punctuation goes first, "the-end" becomes the
/// single word "theend" and keeps its article.
/// </remarks>
public static partial class RagAnswerMetric
{
    /// <summary>The markers at which the reference cuts a generated text before scoring, in the order it cuts.</summary>
    public static IReadOnlyList<string> PredictionEndMarkers { get; } = ["<|im_end|>", "<|eot_id|>"];

    /// <summary>
    /// The part of <paramref name="generated"/> that is scored: the text before the first
    /// <c>&lt;|im_end|&gt;</c>, then before the first <c>&lt;|eot_id|&gt;</c> of that.
    /// </summary>
    public static string ExtractPrediction(string generated)
    {
        ArgumentNullException.ThrowIfNull(generated);
        foreach (string marker in PredictionEndMarkers)
        {
            int at = generated.IndexOf(marker, StringComparison.Ordinal);
            if (at >= 0)
            {
                generated = generated[..at];
            }
        }

        return generated;
    }

    /// <summary>SQuAD-style normalisation of an answer or a prediction (see the type's remarks).</summary>
    public static string Normalize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string withoutArticles = Articles().Replace(LowerWithoutPunctuation(text), " ");
        return string.Join(' ', withoutArticles.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(SplitOnPythonOnlyWhitespace));
    }

    /// <summary>
    /// Whether <paramref name="generated"/> answers correctly: some normalised answer is a
    /// substring of the normalised prediction (<see cref="ExtractPrediction"/>). An answer that
    /// normalises to the empty string (such as "the") matches every prediction, as in the reference.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="answers"/> is empty or holds a null.</exception>
    public static bool IsCorrect(string generated, IEnumerable<string> answers)
    {
        ArgumentNullException.ThrowIfNull(generated);
        ArgumentNullException.ThrowIfNull(answers);
        string prediction = Normalize(ExtractPrediction(generated));
        bool any = false;
        bool correct = false;
        foreach (string answer in answers)
        {
            if (answer is null)
            {
                throw new ArgumentException("an answer is null", nameof(answers));
            }

            any = true;
            correct |= prediction.Contains(Normalize(answer), StringComparison.Ordinal);
        }

        return any ? correct : throw new ArgumentException("no gold answers to compare with", nameof(answers));
    }

    /// <summary>The dataset score: the percentage of correct records (0 to 100).</summary>
    /// <exception cref="ArgumentException">There are no records.</exception>
    public static double Accuracy(IEnumerable<bool> correct)
    {
        ArgumentNullException.ThrowIfNull(correct);
        long total = 0, right = 0;
        foreach (bool c in correct)
        {
            total++;
            right += c ? 1 : 0;
        }

        return total > 0 ? 100.0 * right / total : throw new ArgumentException("no records to score", nameof(correct));
    }

    /// <summary>
    /// Python's <c>str.lower()</c> (full Unicode lower-casing: "İ" becomes "i" and a combining dot,
    /// a capital sigma at the end of a word becomes "ς") with ASCII punctuation deleted.
    /// </summary>
    private static string LowerWithoutPunctuation(string text)
    {
        // Simple case mapping keeps every UTF-16 unit in place (surrogate pairs included), so
        // index i of `lower` is the lower-case of index i of `text`.
        string lower = text.ToLowerInvariant();
        var result = new StringBuilder(lower.Length);
        for (int i = 0; i < lower.Length; i++)
        {
            char c = lower[i];
            if (IsAsciiPunctuation(c))
            {
                continue;
            }

            if (text[i] == '\u0130')
            {
                result.Append("i\u0307");
            }
            else if (text[i] == '\u03A3' && IsFinalSigma(text, i))
            {
                result.Append('\u03C2');
            }
            else
            {
                result.Append(c);
            }
        }

        return result.ToString();
    }

    // Unicode's Final_Sigma condition, as Python applies it: a cased letter before (skipping
    // case-ignorable characters) and none after.
    private static bool IsFinalSigma(string text, int at)
    {
        int before = at - 1;
        while (before >= 0 && IsCaseIgnorable(text[before]))
        {
            before--;
        }

        int after = at + 1;
        while (after < text.Length && IsCaseIgnorable(text[after]))
        {
            after++;
        }

        return before >= 0 && IsCased(text[before]) && !(after < text.Length && IsCased(text[after]));
    }

    private static bool IsCased(char c) => char.GetUnicodeCategory(c) is UnicodeCategory.UppercaseLetter
        or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter;

    private static bool IsCaseIgnorable(char c) => c is '\'' or '.' or ':' or '\u00B7' or '\u2019' || char.GetUnicodeCategory(c)
        is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
        or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;

    private static bool IsAsciiPunctuation(char c) => c is (>= '!' and <= '/') or (>= ':' and <= '@') or (>= '[' and <= '`') or (>= '{' and <= '~');

    // Python's str.split() also splits on the information separators U+001C..U+001F, which .NET
    // does not count as white space.
    private static IEnumerable<string> SplitOnPythonOnlyWhitespace(string word) =>
        word.Split(['\u001C', '\u001D', '\u001E', '\u001F'], StringSplitOptions.RemoveEmptyEntries);

    // Python's \b: a word character is a letter, a number or "_" (not a combining mark, unlike .NET's \w).
    [GeneratedRegex(@"(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])", RegexOptions.CultureInvariant)]
    private static partial Regex Articles();
}
