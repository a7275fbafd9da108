using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Limits;

/// <summary>
/// Generation runs to the model's position limit whatever MaxNewTokens asks (up to int.MaxValue),
/// ends with reason Length exactly there, and a prompt that cannot fit fails before any work.
/// </summary>
public class PositionLimitTests
{
    private static readonly GenerationOptions s_unbounded = new()
    {
        MaxNewTokens = int.MaxValue,
        StopStrings = [],
        StopTokenIds = [],
    };

    [Theory]
    [InlineData(AttentionMode.Block)]
    [InlineData(AttentionMode.Full)]
    [InlineData(AttentionMode.BlockOnePass)]
    public async Task MaxNewTokens_of_int_MaxValue_generates_up_to_the_last_position(AttentionMode mode)
    {
        const int positions = 2048;
        using var model = TinyRandomModels.Create(positions);
        using var session = new BlockSession(model);
        var prompt = BlockPrompt.FromTokenizedBlocks([TinyRandomModels.Tokens(6, seed: 1), TinyRandomModels.Tokens(4, seed: 2)]);

        var result = await session.GenerateAsync(prompt, s_unbounded with { Mode = mode });

        // The prompt takes 10 positions and every generated token but the last is fed back: the
        // sequence ends when the last position is taken, with one more token sampled from it.
        result.FinishReason.Should().Be(FinishReason.Length);
        result.TokenIds.Should().HaveCount(positions - 10 + 1);
    }

    [Fact]
    public async Task A_prompt_filling_every_position_still_gets_its_one_token()
    {
        using var model = TinyRandomModels.Create(maxPositions: 64);
        using var session = new BlockSession(model);
        var prompt = BlockPrompt.FromTokenizedBlocks([TinyRandomModels.Tokens(40, seed: 3), TinyRandomModels.Tokens(24, seed: 4)]);

        var result = await session.GenerateAsync(prompt, s_unbounded);

        result.FinishReason.Should().Be(FinishReason.Length);
        result.TokenIds.Should().HaveCount(1);
    }

    [Fact]
    public async Task MaxNewTokens_below_the_limit_still_ends_generation_with_reason_length()
    {
        using var model = TinyRandomModels.Create();
        using var session = new BlockSession(model);
        var prompt = BlockPrompt.FromTokenizedBlocks([TinyRandomModels.Tokens(5, seed: 5), TinyRandomModels.Tokens(5, seed: 6)]);

        var result = await session.GenerateAsync(prompt, s_unbounded with { MaxNewTokens = 1500 });

        result.FinishReason.Should().Be(FinishReason.Length);
        result.TokenIds.Should().HaveCount(1500);
    }

    [Fact]
    public async Task A_prompt_one_token_too_long_fails_before_the_model_runs()
    {
        using var model = new CountingModel(TinyRandomModels.Create(maxPositions: 64));
        using var session = new BlockSession(model);
        var prompt = BlockPrompt.FromTokenizedBlocks([TinyRandomModels.Tokens(40, seed: 7), TinyRandomModels.Tokens(25, seed: 8)]);

        var act = () => session.GenerateAsync(prompt, s_unbounded);

        await act.Should().ThrowAsync<ArgumentException>().WithMessage("*65 tokens*64 positions*");
        (model.Forwards, model.CachesCreated).Should().Be((0, 0), "the prompt is measured before any cache or forward pass");
    }
}
