using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Session;

/// <summary>Sampling, stopping, streaming and cancellation of <see cref="BlockSession"/>.</summary>
public class GenerationTests
{
    private static readonly BlockPrompt s_prompt = BlockPrompt.ForRag(
        [new RagPassage("Xawery Żuławski", "Xawery Żuławski (born 22 December 1971 in Warsaw) is a Polish film director.")],
        "Who is the director?");

    private static BlockSession Session => new(TestModels.Get("tiny-llama3"));

    [Fact]
    public async Task Sampling_with_a_seed_is_reproducible_and_differs_from_greedy()
    {
        var sampled = new GenerationOptions { MaxNewTokens = 12, Temperature = 1.5f, TopK = 50, TopP = 0.95f, Seed = 42, StopStrings = [], StopTokenIds = [] };

        var first = await Session.GenerateAsync(s_prompt, sampled);
        var second = await Session.GenerateAsync(s_prompt, sampled);
        var otherSeed = await Session.GenerateAsync(s_prompt, sampled with { Seed = 7 });
        var greedy = await Session.GenerateAsync(s_prompt, sampled with { Temperature = 0 });

        second.TokenIds.Should().Equal(first.TokenIds);
        otherSeed.TokenIds.Should().NotEqual(first.TokenIds);
        greedy.TokenIds.Should().NotEqual(first.TokenIds);
    }

    [Fact]
    public async Task Top_k_of_one_is_greedy()
    {
        var greedy = await Session.GenerateAsync(s_prompt, new GenerationOptions { MaxNewTokens = 8, StopStrings = [], StopTokenIds = [] });
        var topOne = await Session.GenerateAsync(s_prompt, new GenerationOptions { MaxNewTokens = 8, Temperature = 2f, TopK = 1, Seed = 3, StopStrings = [], StopTokenIds = [] });

        topOne.TokenIds.Should().Equal(greedy.TokenIds);
    }

    [Fact]
    public async Task A_stop_string_ends_generation_and_is_left_out_of_the_text()
    {
        var session = Session;
        var free = await session.GenerateAsync(s_prompt, new GenerationOptions { MaxNewTokens = 12, StopStrings = [], StopTokenIds = [] });
        string stop = free.Text.Substring(free.Text.Length / 2, Math.Min(3, free.Text.Length - free.Text.Length / 2));

        var stopped = await session.GenerateAsync(s_prompt, new GenerationOptions { MaxNewTokens = 12, StopStrings = [stop], StopTokenIds = [] });

        stopped.FinishReason.Should().Be(FinishReason.StopString);
        stopped.Text.Should().Be(free.Text[..free.Text.IndexOf(stop, StringComparison.Ordinal)]);
    }

    [Fact]
    public async Task An_end_of_sequence_token_ends_generation_and_is_left_out()
    {
        var session = Session;
        var free = await session.GenerateAsync(s_prompt, new GenerationOptions { MaxNewTokens = 6, StopStrings = [], StopTokenIds = [] });

        var stopped = await session.GenerateAsync(s_prompt, new GenerationOptions { MaxNewTokens = 6, StopStrings = [], StopTokenIds = [free.TokenIds[3]] });

        stopped.FinishReason.Should().Be(FinishReason.EndOfSequence);
        stopped.TokenIds.Should().Equal(free.TokenIds.Take(free.TokenIds.ToList().IndexOf(free.TokenIds[3])));
    }

    [Fact]
    public async Task Streamed_pieces_concatenate_to_the_result_text_without_broken_characters()
    {
        var options = new GenerationOptions { MaxNewTokens = 24, StopStrings = [], StopTokenIds = [] };
        var pieces = new List<string>();
        GenerationResult? result = null;
        await foreach (var chunk in Session.StreamAsync(s_prompt, options))
        {
            pieces.Add(chunk.Text);
            result = chunk.Result ?? result;
        }

        result.Should().NotBeNull();
        string.Concat(pieces).Should().Be(result!.Text);
        pieces.Should().NotContain(p => p.Contains('\uFFFD') && !result.Text.Contains('\uFFFD'));
        result.TokenIds.Should().HaveCount(24);
        result.FinishReason.Should().Be(FinishReason.Length);
    }

    [Fact]
    public async Task The_result_reports_timings_and_counts()
    {
        var result = await Session.GenerateAsync(s_prompt, new GenerationOptions { MaxNewTokens = 4, StopStrings = [], StopTokenIds = [] });

        result.LocalBlocks.Should().Be(2);
        result.EncodedBlocks.Should().Be(2, "there is no store, so every local block is encoded");
        result.ReusedBlocks.Should().Be(0);
        result.ComputedPromptTokens.Should().Be(result.PromptTokens);
        result.TimeToFirstToken.Should().BePositive().And.BeLessThanOrEqualTo(result.TotalTime);
        result.TokensPerSecond.Should().BePositive();
    }

    [Fact]
    public async Task Cancellation_stops_generation()
    {
        using var cancellation = new CancellationTokenSource();
        var options = new GenerationOptions { MaxNewTokens = 200, StopStrings = [], StopTokenIds = [] };
        int received = 0;

        var act = async () =>
        {
            await foreach (var chunk in Session.StreamAsync(s_prompt, options, cancellation.Token))
            {
                if (++received == 3)
                {
                    cancellation.Cancel();
                }
            }
        };

        await act.Should().ThrowAsync<OperationCanceledException>();
        received.Should().Be(3);
    }
}
