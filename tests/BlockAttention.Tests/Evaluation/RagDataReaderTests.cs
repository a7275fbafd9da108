using BlockAttention.Evaluation;

namespace BlockAttention.Tests.Evaluation;

public class RagDataReaderTests
{
    private const string GoodRecord =
        """{"question": "Q?", "answers": ["a1", "a2"], "documents": [{"title": "T1", "text": "X1", "score": 0.5}, {"title": "T2", "text": "X2"}], "id": 7}""";

    [Fact]
    public void Reads_records_skipping_blank_lines_and_ignoring_unknown_keys()
    {
        var records = RagDataReader.Read(new StringReader(GoodRecord + "\r\n\n  \n" + GoodRecord + "\n"), "data.jsonl").ToList();

        records.Should().HaveCount(2);
        records[0].Question.Should().Be("Q?");
        records[0].Answers.Should().Equal("a1", "a2");
        records[0].Documents.Should().Equal(new RagDocument("T1", "X1", 0.5), new RagDocument("T2", "X2", null));
    }

    [Theory]
    [InlineData("{\"question\": \"Q\"", "line 2: not valid JSON (*")]
    [InlineData("[1, 2]", "line 2: a record must be a JSON object, got a list")]
    [InlineData("{\"answers\": [\"a\"], \"documents\": []}", "line 2: missing 'question'")]
    [InlineData("{\"question\": 5, \"answers\": [\"a\"], \"documents\": []}", "line 2: 'question' must be a string, got the number 5")]
    [InlineData("{\"question\": \"Q\", \"answers\": \"a\", \"documents\": []}", "line 2: 'answers' must be a list, got a string")]
    [InlineData("{\"question\": \"Q\", \"answers\": [], \"documents\": []}", "line 2: 'answers' is empty*")]
    [InlineData("{\"question\": \"Q\", \"answers\": [\"a\", null], \"documents\": []}", "line 2: answers[1] must be a string, got null")]
    [InlineData("{\"question\": \"Q\", \"answers\": [\"a\"]}", "line 2: missing 'documents'")]
    [InlineData("{\"question\": \"Q\", \"answers\": [\"a\"], \"documents\": [\"text\"]}", "line 2: documents[0] must be an object*")]
    [InlineData("{\"question\": \"Q\", \"answers\": [\"a\"], \"documents\": [{\"title\": \"T\"}]}", "line 2: missing 'documents[0].text'")]
    [InlineData("{\"question\": \"Q\", \"answers\": [\"a\"], \"documents\": [{\"title\": \"T\", \"text\": \"X\", \"score\": \"high\"}]}",
        "line 2: documents[0].score must be a finite number, got a string")]
    public void A_bad_record_names_the_file_the_line_and_the_key(string badLine, string message)
    {
        var read = () => RagDataReader.Read(new StringReader(GoodRecord + "\n" + badLine + "\n"), "data.jsonl").ToList();

        read.Should().Throw<RagDataFormatException>().WithMessage($"data.jsonl, {message}").Which.Line.Should().Be(2);
    }

    [Fact]
    public void A_line_longer_than_the_limit_is_refused_before_it_is_read_whole()
    {
        string longLine = "{\"question\": \"" + new string('x', 1000) + "\"}";

        var read = () => RagDataReader.Read(new StringReader(longLine), "big.jsonl", maxLineLength: 100).ToList();

        read.Should().Throw<RagDataFormatException>().WithMessage("big.jsonl, line 1: the line is longer than 100 characters");
    }

    [Fact]
    public void A_missing_file_is_an_IOException_naming_it() =>
        FluentActions.Invoking(() => RagDataReader.ReadFile("/nonexistent/data.jsonl")).Should().Throw<IOException>().WithMessage("*/nonexistent/data.jsonl*");
}
