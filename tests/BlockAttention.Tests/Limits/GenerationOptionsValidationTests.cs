using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Limits;

/// <summary>
/// Every number in <see cref="GenerationOptions"/> is checked finite and in range when a request
/// starts, and the exception names the option and the value; nothing runs on the model.
/// </summary>
public class GenerationOptionsValidationTests
{
    public static TheoryData<string, GenerationOptions, object> OutOfRange => new()
    {
        { "MaxNewTokens", new GenerationOptions { MaxNewTokens = 0 }, 0 },
        { "MaxNewTokens", new GenerationOptions { MaxNewTokens = -5 }, -5 },
        { "MaxNewTokens", new GenerationOptions { MaxNewTokens = int.MinValue }, int.MinValue },
        { "Temperature", new GenerationOptions { Temperature = float.PositiveInfinity }, float.PositiveInfinity },
        { "Temperature", new GenerationOptions { Temperature = float.NegativeInfinity }, float.NegativeInfinity },
        { "Temperature", new GenerationOptions { Temperature = float.NaN }, float.NaN },
        { "Temperature", new GenerationOptions { Temperature = -0.5f }, -0.5f },
        { "TopK", new GenerationOptions { TopK = -1 }, -1 },
        { "TopP", new GenerationOptions { TopP = 0f }, 0f },
        { "TopP", new GenerationOptions { TopP = -0.1f }, -0.1f },
        { "TopP", new GenerationOptions { TopP = 1.0001f }, 1.0001f },
        { "TopP", new GenerationOptions { TopP = float.NaN }, float.NaN },
        { "TopP", new GenerationOptions { TopP = float.PositiveInfinity }, float.PositiveInfinity },
        { "Mode", new GenerationOptions { Mode = (AttentionMode)42 }, (AttentionMode)42 },
        { "StopTokenIds", new GenerationOptions { StopTokenIds = [5, -1] }, -1 },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public async Task An_out_of_range_number_is_refused_naming_the_option_and_value(string option, GenerationOptions options, object value)
    {
        using var model = new CountingModel(TinyRandomModels.Create());
        using var session = new BlockSession(model);

        var act = () => session.GenerateAsync(BlockPrompt.FromTokenizedBlocks([[1, 2], [3]]), options);

        var thrown = (await act.Should().ThrowAsync<ArgumentOutOfRangeException>()).Which;
        thrown.ParamName.Should().Be(option);
        thrown.ActualValue.Should().Be(value);
        thrown.Message.Should().Contain(option);
        (model.Forwards, model.CachesCreated).Should().Be((0, 0));
    }

    [Fact]
    public async Task A_stop_token_outside_the_vocabulary_is_refused()
    {
        using var model = TinyRandomModels.Create(); // vocabulary of 256
        using var session = new BlockSession(model);

        var act = () => session.GenerateAsync(BlockPrompt.FromTokenizedBlocks([[1, 2], [3]]), new GenerationOptions { StopTokenIds = [3, 256] });

        var thrown = (await act.Should().ThrowAsync<ArgumentOutOfRangeException>()).Which;
        thrown.ActualValue.Should().Be(256);
        thrown.Message.Should().Contain("StopTokenIds").And.Contain("0..255");
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    public async Task An_empty_or_null_stop_string_is_refused_with_its_index(string? bad)
    {
        using var model = TinyRandomModels.Create();
        using var session = new BlockSession(model);

        var act = () => session.GenerateAsync(BlockPrompt.FromTokenizedBlocks([[1, 2], [3]]), new GenerationOptions { StopStrings = ["ok", bad!] });

        var thrown = (await act.Should().ThrowAsync<ArgumentException>()).Which;
        thrown.ParamName.Should().Be("StopStrings");
        thrown.Message.Should().Contain("StopStrings[1]");
    }

    [Fact]
    public void The_largest_finite_values_are_accepted()
    {
        var options = new GenerationOptions { MaxNewTokens = int.MaxValue, Temperature = float.MaxValue, TopK = int.MaxValue, TopP = 1f, StopStrings = [] };

        options.Invoking(o => o.Validate()).Should().NotThrow();
    }
}
