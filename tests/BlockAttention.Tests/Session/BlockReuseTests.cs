using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Session;

/// <summary>Cross-request reuse of encoded passages through a store, in any order and at any offset.</summary>
public class BlockReuseTests
{
    private static readonly RagPassage[] s_passages =
    [
        new("Polish-Russian War (film)", "Polish-Russian War (Wojna polsko-ruska) is a 2009 Polish film directed by Xawery Żuławski."),
        new("Xawery Żuławski", "Xawery Żuławski (born 22 December 1971 in Warsaw) is a Polish film director."),
        new("Viktor Yeliseyev", "Viktor Petrovich Yeliseyev (born June 9, 1950) is a Russian general and orchestra conductor."),
        new("Andrzej Żuławski", "Andrzej Żuławski was a Polish film director and writer, married to Małgorzata Braunek."),
    ];

    private static readonly GenerationOptions s_greedy = new() { MaxNewTokens = 8, StopStrings = [], StopTokenIds = [] };

    private static MemoryKvBlockStore NewStore(long maxBytes = 64L << 20) => new(new MemoryKvBlockStoreOptions { MaxBytes = maxBytes });

    [Fact]
    public async Task Passages_reused_in_another_order_and_offset_equal_a_cold_run_and_are_not_encoded_again()
    {
        var model = TestModels.Get("tiny-llama3");
        using var store = NewStore();
        var session = new BlockSession(model, store);
        var first = BlockPrompt.ForRag(s_passages[..3], "Who directed Polish-Russian War?");
        var reordered = BlockPrompt.ForRag([s_passages[3], s_passages[2], s_passages[0], s_passages[1]], "Who is Xawery's mother?");

        var cold = await session.GenerateAsync(first, s_greedy);
        var warm = await session.GenerateAsync(reordered, s_greedy);

        cold.EncodedBlocks.Should().Be(4, "instruction and three passages are new");
        warm.ReusedBlocks.Should().Be(4, "the instruction and passages 0-2 were encoded by the first request");
        warm.EncodedBlocks.Should().Be(1, "only passage 3 is new");
        warm.ComputedPromptTokens.Should().BeLessThan(warm.PromptTokens);

        var fresh = new BlockSession(model);
        var coldLogits = await fresh.FirstTokenLogitsAsync(reordered, s_greedy);
        var warmLogits = await session.FirstTokenLogitsAsync(reordered, s_greedy);
        coldLogits.Zip(warmLogits).Max(p => Math.Abs(p.First - p.Second)).Should().BeLessThanOrEqualTo(1e-4f);
        (await fresh.GenerateAsync(reordered, s_greedy)).TokenIds.Should().Equal(warm.TokenIds);
    }

    [Fact]
    public async Task A_second_request_sharing_all_passages_encodes_none_of_them()
    {
        using var store = NewStore();
        var session = new BlockSession(TestModels.Get("tiny-llama3"), store);

        await session.GenerateAsync(BlockPrompt.ForRag(s_passages, "First question?"), s_greedy);
        var second = await session.GenerateAsync(BlockPrompt.ForRag(s_passages, "Second question?"), s_greedy);

        second.EncodedBlocks.Should().Be(0);
        second.ReusedBlocks.Should().Be(5);
        store.Statistics.Hits.Should().Be(5);
    }

    [Fact]
    public async Task Block_mode_with_reuse_equals_the_one_pass_formulation()
    {
        using var store = NewStore();
        var session = new BlockSession(TestModels.Get("tiny-llama3"), store);
        var prompt = BlockPrompt.ForRag(s_passages, "Which passages mention Warsaw?");
        await session.GenerateAsync(prompt, s_greedy); // warm the store

        var cached = await session.FirstTokenLogitsAsync(prompt, s_greedy);
        var onePass = await session.FirstTokenLogitsAsync(prompt, s_greedy with { Mode = AttentionMode.BlockOnePass });

        cached.Zip(onePass).Max(p => Math.Abs(p.First - p.Second)).Should().BeLessThanOrEqualTo(1e-4f);
    }

    [Fact]
    public async Task A_block_larger_than_the_store_limit_is_used_uncached_and_the_request_succeeds()
    {
        using var store = NewStore(maxBytes: 1024);
        var session = new BlockSession(TestModels.Get("tiny-llama3"), store);
        var prompt = BlockPrompt.ForRag(s_passages[..2], "Who?");

        var first = await session.GenerateAsync(prompt, s_greedy);
        var second = await session.GenerateAsync(prompt, s_greedy);

        first.EncodedBlocks.Should().Be(3);
        second.EncodedBlocks.Should().Be(3, "nothing could be kept");
        second.TokenIds.Should().Equal(first.TokenIds);
        store.Statistics.Rejected.Should().Be(6);
        store.Statistics.Bytes.Should().Be(0);
    }

    [Fact]
    public async Task Blocks_stored_by_another_model_are_never_used()
    {
        using var store = NewStore();
        int[][] blocks = [[11, 12, 13, 14], [15, 16, 17], [18, 19]];
        var llama2 = new BlockSession(TestModels.Get("tiny-llama2"), store);
        var llama3 = new BlockSession(TestModels.Get("tiny-llama3"), store);

        await llama2.GenerateAsync(BlockPrompt.FromTokenizedBlocks(blocks), s_greedy);
        var other = await llama3.GenerateAsync(BlockPrompt.FromTokenizedBlocks(blocks), s_greedy);
        var alone = await new BlockSession(TestModels.Get("tiny-llama3")).GenerateAsync(BlockPrompt.FromTokenizedBlocks(blocks), s_greedy);

        other.ReusedBlocks.Should().Be(0, "the same token ids encoded by another model are other states");
        other.EncodedBlocks.Should().Be(2);
        other.TokenIds.Should().Equal(alone.TokenIds);
        store.Statistics.Entries.Should().Be(4);
    }

    [Fact]
    public async Task Storing_can_be_turned_off_per_request()
    {
        using var store = NewStore();
        var session = new BlockSession(TestModels.Get("tiny-llama3"), store);

        await session.GenerateAsync(BlockPrompt.ForRag(s_passages[..1], "Q?"), s_greedy with { StoreEncodedBlocks = false });

        store.Statistics.Entries.Should().Be(0);
    }
}
