using BlockAttention.Llama.Tokenization;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;
using BlockAttention.Training.Data;

namespace BlockAttention.Tests.Training;

public sealed class TrainingSetBuilderTests
{
    private static readonly LlamaTokenizer s_tokenizer = LlamaTokenizer.FromFile(Path.Combine(FixturePaths.Model("tiny-llama3"), "tokenizer.json"));

    [Fact]
    public void Each_block_is_tokenized_alone_and_only_the_response_is_labelled()
    {
        var example = new TrainingText(["Doc one.\n", "Doc two.\n", "Question?\n<|assistant|>\n"], "Answer");
        var (full, block) = new TrainingSetBuilder(s_tokenizer).Tokenize(example)!.Value;

        var blocks = example.Blocks.Select(b => s_tokenizer.Encode(b)).ToList();
        var response = s_tokenizer.Encode("Answer").Append(128001).ToArray(); // <|end_of_text|> is id 128001
        full.InputIds.Should().Equal(blocks.SelectMany(b => b).Concat(response));
        full.LocalBlockLengths.Should().Equal(blocks[0].Count, blocks[1].Count);
        full.BlockAttention.Should().BeFalse();
        int prompt = blocks.Sum(b => b.Count);
        full.Labels.Take(prompt).Should().OnlyContain(l => l == TrainingSample.IgnoreLabel);
        full.Labels.Skip(prompt).Should().Equal(response);

        // The block copy has the prefix text in front of block 0, counted into block 0 and excluded from the loss.
        var first = s_tokenizer.Encode("[Block-Attention]Doc one.\n");
        block.BlockAttention.Should().BeTrue();
        block.InputIds.Should().Equal(first.Concat(blocks[1]).Concat(blocks[2]).Concat(response));
        block.LocalBlockLengths.Should().Equal(first.Count, blocks[1].Count);
        block.LossTokens.Should().Be(response.Length);
    }

    [Fact]
    public void Samples_over_the_maximum_are_dropped_and_counted_and_the_rest_shuffled_by_seed()
    {
        var examples = Enumerable.Range(0, 10).Select(i => new TrainingText([$"Passage {i}.\n", "Q?\n"], new string('x', i * 40))).ToList();
        var options = new TrainingSetOptions { MaxLength = 30, ShuffleSeed = 7 };
        var set = new TrainingSetBuilder(s_tokenizer, options).Build(examples);
        var kept = examples.Count(e => new TrainingSetBuilder(s_tokenizer).Tokenize(e)!.Value.Full.Length <= 30);

        set.Examples.Should().Be(10);
        set.DroppedTooLong.Should().Be(10 - kept).And.BeGreaterThan(0);
        set.Samples.Should().HaveCount(2 * kept);
        set.Samples.Count(s => s.BlockAttention).Should().Be(kept);
        set.Samples.Should().OnlyContain(s => s.BlockAttention || s.Length <= 30);
        var again = new TrainingSetBuilder(s_tokenizer, options).Build(examples);
        again.Samples.Select(s => s.InputIds.Length * 2 + (s.BlockAttention ? 1 : 0)).Should().Equal(set.Samples.Select(s => s.InputIds.Length * 2 + (s.BlockAttention ? 1 : 0)));
        var unshuffled = new TrainingSetBuilder(s_tokenizer, new TrainingSetOptions { MaxLength = 30, ShuffleSeed = null }).Build(examples);
        unshuffled.Samples.Select(s => s.BlockAttention).Should().Equal(Enumerable.Range(0, 2 * kept).Select(i => i % 2 == 0));
    }

    [Fact]
    public void Chat_records_give_one_sample_per_assistant_turn_with_the_reference_chunking()
    {
        var messages = new List<ChatMessage>
        {
            new("system", "Be brief.\n\nVery brief."),
            new("user", "Hi"),
            new("assistant", "Hello"),
            new("user", "Line a\nLine b"),
            new("assistant", "Bye"),
        };
        var samples = ChatSampleSplitter.Split(messages);

        samples.Should().HaveCount(2);
        samples[0].Blocks.Should().Equal("<|system|>\nBe brief.\n\n", "Very brief.\n", "<|user|>\nHi\n<|assistant|>\n");
        samples[0].Response.Should().Be("Hello");
        samples[1].Blocks.Should().Equal(
            "<|system|>\nBe brief.\n\n", "Very brief.\n", "<|user|>\nHi\n", "<|assistant|>\nHello<|end_of_text|>\n", "<|user|>\nLine a\nLine b\n<|assistant|>\n");
        samples[1].Response.Should().Be("Bye");
    }

    [Fact]
    public void Reader_takes_both_formats_and_names_the_line_at_fault()
    {
        string path = Path.Combine(Path.GetTempPath(), $"train-{Guid.NewGuid():N}.jsonl");
        try
        {
            File.WriteAllLines(path, [
                """{"prompt": "ab", "blocks": ["a", "b"], "response": "c"}""",
                "",
                """{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "r"}]}""",
            ]);
            var read = TrainingTextReader.Read(path).ToList();
            read.Should().HaveCount(2);
            read[0].Blocks.Should().Equal("a", "b");
            read[1].Blocks.Should().Equal("<|user|>\nq\n<|assistant|>\n");

            File.AppendAllLines(path, ["""{"blocks": ["a"], "response": 3}"""]);
            var act = () => TrainingTextReader.Read(path).ToList();
            act.Should().Throw<TrainingDataException>().WithMessage("*line 4*'response' must be a string*");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
