using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Prompts;

namespace BlockAttention.Extensions.AI.Tests;

/// <summary>Prompts for applications: chat formats, chat with passages, stop strings, per-block results, token counts, precomputation.</summary>
public class PromptTests
{
    private static readonly RagPassage[] s_passages =
    [
        new("Radium", "Radium is a chemical element with the symbol Ra and atomic number 88."),
        new("Marie Curie", "Marie Curie discovered radium and polonium with Pierre Curie."),
    ];

    private static readonly GenerationOptions s_greedy = new() { MaxNewTokens = 4, StopStrings = [], StopTokenIds = [] };

    private const string Tulu3Template =
        "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\\n' + message['content'] + '\\n' }}" +
        "{% elif message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}{% elif message['role'] == 'assistant' %}" +
        "{{ '<|assistant|>\\n'  + message['content'] + eos_token + '\\n' }}{% endif %}{% if loop.last and add_generation_prompt %}" +
        "{{ '<|assistant|>\\n' }}{% endif %}{% endfor %}";

    [Fact]
    public void The_format_is_recognised_from_the_chat_template()
    {
        ChatFormat.FromChatTemplate(Fixtures.Model().Info.ChatTemplate).Should().BeSameAs(ChatFormat.Llama3);
        ChatFormat.FromChatTemplate(Tulu3Template).Should().BeSameAs(ChatFormat.Tulu);
        ChatFormat.FromChatTemplate("{{ messages | join }}").Should().BeNull();
        ChatFormat.FromChatTemplate(null).Should().BeNull();
        ChatFormat.FromName("LLAMA3").Should().BeSameAs(ChatFormat.Llama3);
        FluentActions.Invoking(() => ChatFormat.FromName("chatml")).Should().Throw<ArgumentException>().WithMessage("*chatml*tulu*llama3*");
    }

    [Fact]
    public void History_passages_and_question_render_in_the_Tulu_layout_with_passages_as_their_own_blocks()
    {
        var prompt = BlockPrompt.ForChat(
            [new("system", "Be brief."), new("user", "Hi"), new("assistant", "Hello!")],
            s_passages, "Who discovered radium?", ChatFormat.Tulu, new ChatPromptOptions { AddBeginningOfText = true });

        prompt.Blocks.Select(b => b.Text).Should().Equal(
            "<|begin_of_text|><|system|>\nBe brief.",
            "\n<|user|>\nHi",
            "\n<|assistant|>\nHello!",
            "\n<|user|>\n",
            "- Title: Radium\nRadium is a chemical element with the symbol Ra and atomic number 88.\n",
            "- Title: Marie Curie\nMarie Curie discovered radium and polonium with Pierre Curie.\n",
            "Who discovered radium?\n<|assistant|>\n");
        prompt.StopStrings.Should().Contain("<|user|>").And.NotContain("Question:");
    }

    [Fact]
    public void Only_the_RAG_template_stops_at_Question()
    {
        BlockPrompt.ForRag(s_passages, "Who?").StopStrings.Should().Contain("Question:");
        BlockPrompt.FromBlocks("a", "b").StopStrings.Should().NotContain("Question:");
        BlockPrompt.FromChat([new ChatMessage("user", "Hi")]).StopStrings.Should().NotContain("Question:");
        BlockPrompt.FromChat([new ChatTurn("user", "Hi")], ChatFormat.Llama3).StopStrings.Should().NotContain("Question:").And.Contain("<|eot_id|>");
    }

    [Fact]
    public async Task Without_explicit_stop_strings_a_request_uses_its_prompt_s()
    {
        using var session = new BlockSession(Fixtures.Model());
        var prompt = BlockPrompt.FromBlocks("Radium is element", " number");
        var free = await session.GenerateAsync(prompt, s_greedy with { MaxNewTokens = 12 });
        free.Text.Length.Should().BeGreaterThan(6, "the fixture writes some text");
        string stop = free.Text.Substring(3, 3);
        int expectedEnd = free.Text.IndexOf(stop, StringComparison.Ordinal);

        var stopped = await session.GenerateAsync(prompt.WithStopStrings([stop]), new GenerationOptions { MaxNewTokens = 12, StopTokenIds = [] });

        stopped.FinishReason.Should().Be(FinishReason.StopString);
        stopped.Text.Should().Be(free.Text[..expectedEnd]);
    }

    [Fact]
    public async Task Results_report_each_block_and_where_the_time_went()
    {
        var model = Fixtures.Model();
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });
        using var session = new BlockSession(model, store);
        var prompt = BlockPrompt.FromBlocks("First passage.\n", "", "Second passage.\n", "Question?");
        int[] lengths = prompt.Blocks.Select(b => model.Tokenizer!.Encode(b.Text!).Count).ToArray();

        var cold = await session.GenerateAsync(prompt, s_greedy);
        var warm = await session.GenerateAsync(prompt, s_greedy);
        var full = await session.GenerateAsync(prompt, s_greedy with { Mode = AttentionMode.Full });

        cold.Blocks.Should().Equal(
            new BlockReport(0, lengths[0], BlockOutcome.Encoded), new BlockReport(1, 0, BlockOutcome.Empty),
            new BlockReport(2, lengths[2], BlockOutcome.Encoded), new BlockReport(3, lengths[3], BlockOutcome.Final));
        warm.Blocks.Select(b => b.Outcome).Should().Equal(BlockOutcome.Reused, BlockOutcome.Empty, BlockOutcome.Reused, BlockOutcome.Final);
        full.Blocks.Select(b => b.Outcome).Should().Equal(BlockOutcome.Computed, BlockOutcome.Empty, BlockOutcome.Computed, BlockOutcome.Final);
        cold.Timings.Encode.Should().BePositive();
        warm.Timings.Encode.Should().Be(TimeSpan.Zero, "nothing was encoded");
        foreach (var result in new[] { cold, warm })
        {
            var t = result.Timings;
            t.Tokenize.Should().BePositive();
            t.Assembly.Should().BePositive();
            t.FinalBlock.Should().BePositive();
            t.Decode.Should().BePositive("four tokens were generated, three of them by decode steps");
            (t.Tokenize + t.Lookup + t.Encode + t.Assembly + t.FinalBlock).Should().BeLessThanOrEqualTo(result.TimeToFirstToken);
            (t.Tokenize + t.Lookup + t.Encode + t.Assembly + t.FinalBlock + t.Decode).Should().BeLessThanOrEqualTo(result.TotalTime);
        }

        full.Timings.Assembly.Should().Be(TimeSpan.Zero);
    }

    [Fact]
    public async Task Only_the_last_chunk_is_final_and_carries_the_result()
    {
        using var session = new BlockSession(Fixtures.Model());
        var chunks = new List<GenerationChunk>();
        await foreach (var chunk in session.StreamAsync(BlockPrompt.FromBlocks("Hello", " world"), s_greedy))
        {
            chunks.Add(chunk);
        }

        chunks.Select(c => c.IsFinal).Should().Equal([.. Enumerable.Repeat(false, chunks.Count - 1), true]);
        chunks[^1].Result.Should().NotBeNull();
    }

    [Fact]
    public void Token_counts_per_block_come_without_generating_and_a_prompt_too_long_is_counted_not_refused()
    {
        var model = Fixtures.Model();
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });
        using var session = new BlockSession(model, store);
        var rag = BlockPrompt.ForRag(s_passages, "Who?");

        var counts = session.CountTokens(rag);

        counts.Blocks.Should().Equal(rag.Blocks.Select(b => model.Tokenizer!.Encode(b.Text!).Count));
        counts.Total.Should().Be(counts.Blocks.Sum());
        counts.Fits.Should().BeTrue();
        store.Statistics.Should().Be(default(KvBlockStoreStatistics), "counting touches no store");

        var huge = session.CountTokens(BlockPrompt.FromTokenizedBlocks([new int[model.Info.MaxPositions], [1]]));
        huge.Total.Should().Be(model.Info.MaxPositions + 1L);
        huge.Fits.Should().BeFalse();
    }

    [Fact]
    public async Task Precomputed_passages_are_reused_by_a_later_RAG_request_with_the_same_answer_as_without_a_store()
    {
        var model = Fixtures.Model();
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });
        using var session = new BlockSession(model, store);

        var first = await session.PrecomputeAsync(s_passages);
        var again = await session.PrecomputeAsync(s_passages);
        var rag = BlockPrompt.ForRag(s_passages, "Who discovered radium?");
        var result = await session.GenerateAsync(rag, s_greedy);
        var withoutStore = await new BlockSession(model).GenerateAsync(rag, s_greedy);

        first.Should().Be(new PrecomputeResult(2, 2, 0, s_passages.Sum(p => (long)model.Tokenizer!.Encode(RagPromptTemplate.RenderPassage(p)).Count), 2));
        again.Encoded.Should().Be(0);
        again.AlreadyStored.Should().Be(2);
        result.ReusedBlocks.Should().Be(2, "both passages were precomputed");
        result.EncodedBlocks.Should().Be(1, "only the instruction block was new");
        result.TokenIds.Should().Equal(withoutStore.TokenIds);
        await FluentActions.Awaiting(() => new BlockSession(model).PrecomputeAsync(["x"])).Should().ThrowAsync<InvalidOperationException>().WithMessage("*no block store*");
    }

    [Fact]
    public async Task Chat_passages_share_stored_states_with_precomputed_RAG_passages()
    {
        var model = Fixtures.Model();
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });
        using var session = new BlockSession(model, store);
        await session.PrecomputeAsync(s_passages);

        var result = await session.GenerateAsync(BlockPrompt.ForChat([], s_passages, "Who?", ChatFormat.Llama3), s_greedy);

        result.Blocks.Where(b => b.Outcome == BlockOutcome.Reused).Select(b => b.Index).Should().Equal(1, 2);
    }
}
