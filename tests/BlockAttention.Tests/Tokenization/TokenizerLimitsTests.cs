using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using BlockAttention.Llama.Tokenization;

namespace BlockAttention.Tests.Tokenization;

/// <summary>
/// The tokenizer's limits: a pre-tokenizer regex that backtracks catastrophically fails with an error naming
/// tokenizer.json instead of hanging, and text longer than the input limit is refused before any work.
/// </summary>
public sealed class TokenizerLimitsTests : IDisposable
{
    // Nested quantifiers over the same letter: a failing match tries every way of splitting the run.
    private const string CatastrophicPattern = @"(x+x+)+y|\s+|[^x\s]+|x";
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(60);

    private readonly TokenizerJsonBuilder _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public async Task CatastrophicPattern_TimesOut_WithAnErrorNamingTheFileAndTheOption()
    {
        string path = WriteWithPattern(CatastrophicPattern);
        var tokenizer = LlamaTokenizer.FromFile(path, new LlamaTokenizerOptions { RegexMatchTimeout = TimeSpan.FromMilliseconds(50) });

        var act = () => Task.Run(() => tokenizer.Encode(new string('x', 64))).WaitAsync(HangGuard);

        var error = (await act.Should().ThrowAsync<TokenizerFormatException>()).Which;
        error.FilePath.Should().Be(path);
        error.Message.Should().Contain("pre_tokenizer.pretokenizers[0].pattern.Regex").And.Contain("RegexMatchTimeout");
        error.InnerException.Should().BeOfType<RegexMatchTimeoutException>();
    }

    [Fact]
    public async Task CatastrophicPattern_TimesOut_WithTheDefaultOptions()
    {
        var tokenizer = LlamaTokenizer.FromFile(WriteWithPattern(CatastrophicPattern));

        var act = () => Task.Run(() => tokenizer.Encode(new string('x', 64))).WaitAsync(HangGuard);

        await act.Should().ThrowAsync<TokenizerFormatException>();
    }

    [Fact]
    public void CatastrophicPattern_OnTextWhereItDoesNotBacktrack_Encodes()
    {
        var tokenizer = LlamaTokenizer.FromFile(WriteWithPattern(CatastrophicPattern), new LlamaTokenizerOptions { RegexMatchTimeout = TimeSpan.FromMilliseconds(50) });

        // Pieces "the", " ", "the"; the builder's vocabulary has the bytes as ids 0-255 and "he" as 257 (no "t"+"he").
        tokenizer.Encode("the the").Should().Equal('t', 257, ' ', 't', 257);
    }

    [Fact]
    public void TextAtTheInputLimit_Encodes_AndOneCharacterMore_IsRefused()
    {
        var tokenizer = LlamaTokenizer.FromFile(_files.Write(), new LlamaTokenizerOptions { MaxInputCharacters = 100 });

        tokenizer.Encode(new string('a', 100)).Should().NotBeEmpty();
        var act = () => tokenizer.Encode(new string('a', 101));

        act.Should().Throw<ArgumentException>().WithMessage("*101 characters*limit of 100*MaxInputCharacters*");
    }

    [Fact]
    public void DefaultInputLimit_RefusesLongerText()
    {
        var tokenizer = LlamaTokenizer.FromFile(_files.Write());

        var act = () => tokenizer.Encode(new string('a', LlamaTokenizerOptions.DefaultMaxInputCharacters + 1));

        act.Should().Throw<ArgumentException>().WithMessage($"*{LlamaTokenizerOptions.DefaultMaxInputCharacters + 1} characters*");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    public void NonPositiveTimeout_IsRejected(int milliseconds)
    {
        var act = () => LlamaTokenizer.FromFile(_files.Write(), new LlamaTokenizerOptions { RegexMatchTimeout = TimeSpan.FromMilliseconds(milliseconds) });

        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*RegexMatchTimeout*");
    }

    [Fact]
    public void InfiniteTimeout_IsAccepted()
    {
        var tokenizer = LlamaTokenizer.FromFile(_files.Write(), new LlamaTokenizerOptions { RegexMatchTimeout = Regex.InfiniteMatchTimeout });

        tokenizer.Encode(" the").Should().Equal(258);
    }

    [Fact]
    public void NonPositiveInputLimit_IsRejected()
    {
        var act = () => LlamaTokenizer.FromFile(_files.Write(), new LlamaTokenizerOptions { MaxInputCharacters = 0 });

        act.Should().Throw<ArgumentOutOfRangeException>().WithMessage("*MaxInputCharacters*");
    }

    private string WriteWithPattern(string pattern)
    {
        _files.Json["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"] = new JsonObject { ["Regex"] = pattern };
        return _files.Write();
    }
}
