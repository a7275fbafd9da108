using BlockAttention.Evaluation;

namespace BlockAttention.Tests.Evaluation;

public class RagRecordTests
{
    [Fact]
    public void ToPrompt_builds_the_reference_rag_blocks_in_document_order()
    {
        var record = new RagRecord
        {
            Question = "Who?",
            Answers = ["x"],
            Documents = [new RagDocument("B", "second", 0.1), new RagDocument("A", "first", 0.9)],
        };

        var blocks = record.ToPrompt().Blocks.Select(b => b.Text).ToList();

        // The reference server's strings, written out by hand.
        blocks.Should().Equal(
            "<|user|>\nYou are an intelligent AI assistant. Please answer questions based on the user's instructions. " +
            "Below are some reference documents that may help you in answering the user's question.\n\n",
            "- Title: B\nsecond\n",
            "- Title: A\nfirst\n",
            "\n\nPlease write a high-quality answer for the given question using only the provided search documents " +
            "(some of which might be irrelevant).\nQuestion: Who?\n<|assistant|>\n");
    }

    [Fact]
    public void IsAnsweredBy_applies_the_reference_metric()
    {
        var record = new RagRecord { Question = "Q", Answers = ["The Salt Lantern"], Documents = [] };

        record.IsAnsweredBy("It is \"Salt Lantern\".").Should().BeTrue();
        record.IsAnsweredBy("Salt Lanterns<|eot_id|>").Should().BeTrue();
        record.IsAnsweredBy("Salt<|eot_id|> Lantern").Should().BeFalse();
    }
}
