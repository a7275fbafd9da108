using BlockAttention.Evaluation;

namespace BlockAttention.Tests.Evaluation;

/// <summary>
/// The reference metric on hand-computed cases. Every expected string below was worked out by hand
/// from the SQuAD rules (lower-case, drop ASCII punctuation, articles to spaces, collapse
/// whitespace) and agrees with Python's <c>normalize_answer</c> from the SQuAD evaluation script.
/// </summary>
public class RagAnswerMetricTests
{
    [Theory]
    [InlineData("The Eiffel Tower", "eiffel tower")]
    [InlineData("  An  apple\ta day\n", "apple day")]
    [InlineData("a an the", "")]
    [InlineData("THE", "")]
    // Articles only as whole words: inside other words they stay.
    [InlineData("Theatre and anthem", "theatre and anthem")]
    // Punctuation is deleted before articles are looked for, so "the-end" is one word.
    [InlineData("the-end", "theend")]
    [InlineData("A_the", "athe")]
    [InlineData("Hello, World!!!", "hello world")]
    [InlineData("don't", "dont")]
    [InlineData("3.14", "314")]
    // Only ASCII punctuation goes: curly quotes, dashes and the degree sign stay.
    [InlineData("\u201cParis\u201d \u2014 caf\u00e9", "\u201cparis\u201d \u2014 caf\u00e9")]
    [InlineData("17 \u00b0C", "17 \u00b0c")]
    // Unicode lower-casing, including the special cases of Python's str.lower().
    [InlineData("NA\u00cfVE \u00dcbermensch", "na\u00efve \u00fcbermensch")]
    [InlineData("S\u00d8LVM\u00c5KE", "s\u00f8lvm\u00e5ke")]
    [InlineData("\u0130stanbul", "i\u0307stanbul")]
    [InlineData("\u039f\u0394\u039f\u03a3 \u039f\u0394\u039f\u03a3.", "\u03bf\u03b4\u03bf\u03c2 \u03bf\u03b4\u03bf\u03c2")]
    [InlineData("\u03a3\u0391", "\u03c3\u03b1")]
    // Unicode whitespace separates words (no-break space, em space, information separators); a zero-width space does not.
    [InlineData("a\u00a0b\u2003c", "b c")]
    [InlineData("x\u001cy", "x y")]
    [InlineData("zero\u200bwidth", "zero\u200bwidth")]
    // A combining mark is not a word character in Python's regex, so "the" before one is still an article.
    [InlineData("the\u0301 cat", "\u0301 cat")]
    [InlineData("", "")]
    public void Normalize_follows_the_squad_rules(string text, string expected) =>
        RagAnswerMetric.Normalize(text).Should().Be(expected);

    [Theory]
    [InlineData("Paris<|im_end|>Berlin", "Paris")]
    [InlineData("Paris<|eot_id|>Berlin", "Paris")]
    // The reference cuts at <|im_end|> first, then at <|eot_id|> within what is left.
    [InlineData("A<|eot_id|>B<|im_end|>C", "A")]
    [InlineData("Paris<|end_of_text|>", "Paris<|end_of_text|>")]
    [InlineData("no marker", "no marker")]
    public void ExtractPrediction_cuts_at_the_end_markers(string generated, string expected) =>
        RagAnswerMetric.ExtractPrediction(generated).Should().Be(expected);

    [Theory]
    [InlineData("The capital of France is Paris.", new[] { "Paris" }, true)]
    [InlineData("It is in PARIS, France", new[] { "paris, france" }, true)]
    [InlineData("about 2,300 people", new[] { "2300" }, true)]
    [InlineData("The answer is Lyon.", new[] { "Paris", "Marseille" }, false)]
    // Substring, not word match: "art" is inside "party".
    [InlineData("a party", new[] { "art" }, true)]
    // Text after the end marker does not count.
    [InlineData("Lyon<|eot_id|>Paris", new[] { "Paris" }, false)]
    [InlineData("Lyon<|im_end|>Paris", new[] { "Paris" }, false)]
    // An answer that normalises to nothing matches everything, as in the reference.
    [InlineData("anything", new[] { "The" }, true)]
    [InlineData("white-tailed eagles nest there", new[] { "white tailed eagle" }, false)]
    [InlineData("white-tailed eagles nest there", new[] { "White-Tailed Eagle" }, true)]
    public void IsCorrect_when_a_normalised_answer_is_inside_the_prediction(string generated, string[] answers, bool expected) =>
        RagAnswerMetric.IsCorrect(generated, answers).Should().Be(expected);

    [Fact]
    public void IsCorrect_refuses_an_empty_answer_list() =>
        FluentActions.Invoking(() => RagAnswerMetric.IsCorrect("x", [])).Should().Throw<ArgumentException>().WithMessage("*no gold answers*");

    [Fact]
    public void Accuracy_is_the_percentage_of_correct_records()
    {
        RagAnswerMetric.Accuracy([true, false, true, true]).Should().Be(75.0);
        RagAnswerMetric.Accuracy([false, false, false]).Should().Be(0.0);
        RagAnswerMetric.Accuracy([true]).Should().Be(100.0);
        FluentActions.Invoking(() => RagAnswerMetric.Accuracy([])).Should().Throw<ArgumentException>();
    }
}
