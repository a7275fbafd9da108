using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Session;

/// <summary>Bad prompts and options fail clearly, before any work, and leave the session usable.</summary>
public class PromptValidationTests
{
    private static BlockSession Session => new(TestModels.Get("tiny-llama3"));

    [Fact]
    public void An_empty_prompt_is_rejected_when_built()
    {
        var act = () => BlockPrompt.FromBlocks(Array.Empty<string>());

        act.Should().Throw<ArgumentException>().WithMessage("*at least one block*");
    }

    [Fact]
    public async Task An_empty_final_block_is_rejected()
    {
        var act = () => Session.GenerateAsync(BlockPrompt.FromBlocks("a passage\n", ""));

        await act.Should().ThrowAsync<ArgumentException>().WithMessage("*final block is empty*");
    }

    [Fact]
    public async Task A_prompt_longer_than_the_model_positions_is_rejected()
    {
        var llama2 = TestModels.Get("tiny-llama2"); // max_position_embeddings 4096
        var session = new BlockSession(llama2);
        var tooLong = BlockPrompt.FromTokenizedBlocks([Enumerable.Repeat(7, 4000), Enumerable.Repeat(8, 100)]);

        var act = () => session.GenerateAsync(tooLong, new GenerationOptions { MaxNewTokens = 1 });

        await act.Should().ThrowAsync<ArgumentException>().WithMessage("*4100 tokens*4096 positions*");
    }

    [Fact]
    public async Task Generation_stops_at_the_position_limit_with_reason_length()
    {
        var session = new BlockSession(TestModels.Get("tiny-llama2"));
        var nearlyFull = BlockPrompt.FromTokenizedBlocks([Enumerable.Repeat(7, 4000), Enumerable.Repeat(8, 94)]);

        var result = await session.GenerateAsync(nearlyFull, new GenerationOptions { MaxNewTokens = 50, StopTokenIds = [], StopStrings = [] });

        result.FinishReason.Should().Be(FinishReason.Length);
        result.TokenIds.Should().HaveCount(3, "positions 4094 and 4095 take two generated tokens back in, and the third needs no position");
    }

    [Fact]
    public async Task A_token_id_outside_the_vocabulary_is_rejected_and_the_session_still_works()
    {
        var session = Session;
        var act = () => session.GenerateAsync(BlockPrompt.FromTokenizedBlocks([[1, 2, 999_999], [3]]));

        await act.Should().ThrowAsync<ArgumentOutOfRangeException>().WithMessage("*999999*vocabulary*");
        var ok = await session.GenerateAsync(BlockPrompt.FromTokenizedBlocks([[1, 2], [3]]), new GenerationOptions { MaxNewTokens = 2 });
        ok.TokenIds.Should().NotBeEmpty();
    }

    [Theory]
    [InlineData(0, 0f, 0, 1f)]
    [InlineData(5, -1f, 0, 1f)]
    [InlineData(5, 1f, -1, 1f)]
    [InlineData(5, 1f, 0, 0f)]
    [InlineData(5, 1f, 0, 1.5f)]
    public async Task Invalid_options_are_rejected(int maxNewTokens, float temperature, int topK, float topP)
    {
        var options = new GenerationOptions { MaxNewTokens = maxNewTokens, Temperature = temperature, TopK = topK, TopP = topP };

        var act = () => Session.GenerateAsync(BlockPrompt.FromBlocks("q"), options);

        await act.Should().ThrowAsync<ArgumentException>();
    }
}
