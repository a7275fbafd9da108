using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;
using BlockAttention.Text;

namespace BlockAttention.Tests.Session;

/// <summary>The prompt's text is measured against a character limit before any block is tokenized.</summary>
public class PromptCharacterLimitTests
{
    [Fact]
    public void TextOverTheLimit_IsRefused_BeforeAnyBlockIsTokenized()
    {
        var tokenizer = new CountingTokenizer();
        var prompt = BlockPrompt.FromBlocks(new string('a', 600), new string('b', 401));

        var act = () => TokenizedPrompt.Create(prompt, tokenizer, maxPositions: 4096, maxCharacters: 1000);

        act.Should().Throw<ArgumentException>().WithMessage("*1001 characters*limit of 1000*MaxPromptCharacters*");
        tokenizer.Calls.Should().Be(0);
    }

    [Fact]
    public void TextAtTheLimit_IsTokenized()
    {
        var tokenizer = new CountingTokenizer();
        var prompt = BlockPrompt.FromBlocks(new string('a', 600), new string('b', 400));

        var request = TokenizedPrompt.Create(prompt, tokenizer, maxPositions: 4096, maxCharacters: 1000);

        request.TotalLength.Should().Be(1000);
        tokenizer.Calls.Should().Be(2);
    }

    [Fact]
    public void BlocksGivenAsTokenIds_DoNotCountAsCharacters()
    {
        var prompt = BlockPrompt.FromTokenizedBlocks([Enumerable.Repeat(7, 2000), [8]]);

        var request = TokenizedPrompt.Create(prompt, new CountingTokenizer(), maxPositions: 4096, maxCharacters: 10);

        request.TotalLength.Should().Be(2001);
    }

    [Fact]
    public async Task Session_RefusesAPromptOverTheDefaultLimit_OfSixteenCharactersPerPosition()
    {
        var session = new BlockSession(TestModels.Get("tiny-llama3")); // 131,072 positions
        int limit = 131_072 * GenerationOptions.DefaultPromptCharactersPerPosition;
        var prompt = BlockPrompt.FromBlocks(new string('a', limit - 10), new string(' ', 11));

        var act = () => session.GenerateAsync(prompt, new GenerationOptions { MaxNewTokens = 1 });

        await act.Should().ThrowAsync<ArgumentException>().WithMessage($"*{limit + 1} characters*limit of {limit}*");
    }

    [Fact]
    public async Task Session_UsesTheLimitOfTheOptions()
    {
        var session = new BlockSession(TestModels.Get("tiny-llama3"));

        var act = () => session.GenerateAsync(BlockPrompt.FromBlocks("a passage\n", "a question?"), new GenerationOptions { MaxNewTokens = 1, MaxPromptCharacters = 20 });

        await act.Should().ThrowAsync<ArgumentException>().WithMessage("*21 characters*limit of 20*");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public async Task NonPositiveLimit_IsRejected(int limit)
    {
        var session = new BlockSession(TestModels.Get("tiny-llama3"));

        var act = () => session.GenerateAsync(BlockPrompt.FromBlocks("q"), new GenerationOptions { MaxPromptCharacters = limit });

        await act.Should().ThrowAsync<ArgumentException>().WithMessage("*MaxPromptCharacters*");
    }

    /// <summary>One token per character; counts its calls, to show the limit is checked before tokenization.</summary>
    private sealed class CountingTokenizer : ITextTokenizer
    {
        public int Calls { get; private set; }

        public IReadOnlyList<int> Encode(string text)
        {
            Calls++;
            return [.. text.Select(c => (int)c)];
        }

        public string Decode(IReadOnlyList<int> ids) => string.Concat(ids.Select(id => (char)id));
    }
}
