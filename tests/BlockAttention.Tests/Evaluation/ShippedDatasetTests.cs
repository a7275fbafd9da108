using BlockAttention.Evaluation;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Evaluation;

/// <summary>The RAG dataset shipped in samples/data: well-formed, and every question answerable from its own documents.</summary>
public class ShippedDatasetTests
{
    public static string DatasetPath => Path.Combine(FixturePaths.Root, "..", "..", "samples", "data", "varnholm-rag.jsonl");

    private static readonly IReadOnlyList<RagRecord> s_records = RagDataReader.ReadFile(DatasetPath);

    [Fact]
    public void Has_about_thirty_multi_passage_records_that_share_passages()
    {
        s_records.Count.Should().BeInRange(30, 40);
        s_records.Should().OnlyContain(r => r.Documents.Count >= 4);
        // Passages recur across questions: that is what the block store reuses.
        var passageUses = s_records.SelectMany(r => r.Documents).GroupBy(d => d.Text).ToList();
        passageUses.Count.Should().BeLessThan(20);
        passageUses.Should().OnlyContain(g => g.Count() >= 2);
    }

    [Fact]
    public void Every_question_is_answerable_from_its_documents_and_some_need_two()
    {
        int needTwo = 0;
        foreach (var record in s_records)
        {
            string allDocuments = string.Join(" ", record.Documents.Select(d => d.Text));
            record.IsAnsweredBy(allDocuments).Should().BeTrue($"the documents of \"{record.Question}\" contain an answer");

            // A question that names none of the answer's passage's title needs a second passage to find it.
            var holders = record.Documents.Where(d => record.IsAnsweredBy(d.Text)).ToList();
            holders.Should().NotBeEmpty();
            if (holders.All(d => !record.Question.Contains(d.Title.Split(' ')[0], StringComparison.OrdinalIgnoreCase)))
            {
                needTwo++;
            }
        }

        needTwo.Should().BeGreaterThanOrEqualTo(5, "some questions reach their answer through a second passage");
    }

    [Fact]
    public void A_random_answer_is_not_counted_correct()
    {
        // Guards against a dataset whose answers are so short that any text matches them.
        s_records.Count(r => r.IsAnsweredBy("I do not know.")).Should().Be(0);
    }
}
