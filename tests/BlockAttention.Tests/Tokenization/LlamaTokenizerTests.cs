using BlockAttention.Text;

namespace BlockAttention.Tests.Tokenization;

public class LlamaTokenizerTests
{
    private const int BeginOfText = 128000;
    private const int EndOfText = 128001;
    private const int EndOfTurn = 128009;

    [Fact]
    public void Shape_IsTheLlama31Tokenizer()
    {
        var tokenizer = Llama3Tokenizer.Instance;

        tokenizer.VocabSize.Should().Be(128256);
        tokenizer.SpecialTokens.Should().HaveCount(256);
        tokenizer.SpecialTokens["<|begin_of_text|>"].Should().Be(BeginOfText);
        tokenizer.SpecialTokens["<|eot_id|>"].Should().Be(EndOfTurn);
    }

    [Fact]
    public void BosAndEos_ComeFromTokenizerConfig()
    {
        Llama3Tokenizer.Instance.BosTokenId.Should().Be(BeginOfText);
        Llama3Tokenizer.Instance.EosTokenId.Should().Be(EndOfTurn);
    }

    [Theory]
    [InlineData("<|begin_of_text|>", BeginOfText)]
    [InlineData("<|end_of_text|>", EndOfText)]
    [InlineData("<|eot_id|>", EndOfTurn)]
    public void SpecialTokenText_MapsToItsSingleId(string text, int id) =>
        Llama3Tokenizer.Instance.Encode(text).Should().Equal(id);

    [Fact]
    public void SpecialTokensInsideText_AreSplitOut()
    {
        var tokenizer = Llama3Tokenizer.Instance;

        IReadOnlyList<int> ids = tokenizer.Encode("Hi<|eot_id|><|eot_id|>there<|end_of_text|>");

        ids.Should().Equal([.. tokenizer.Encode("Hi"), EndOfTurn, EndOfTurn, .. tokenizer.Encode("there"), EndOfText]);
    }

    [Theory]
    [InlineData("<|user|>")] // the reference RAG prompt's role markers are plain text
    [InlineData("<|assistant|>")]
    [InlineData("<|begin_of_text|")] // incomplete
    [InlineData("<|BEGIN_OF_TEXT|>")] // matching is case-sensitive
    public void TextThatIsNotASpecialToken_IsEncodedAsPlainText(string text) =>
        Llama3Tokenizer.Instance.Encode(text).Should().HaveCountGreaterThan(1).And.NotContain(id => id >= BeginOfText);

    [Fact]
    public void EncodeWithBos_StartsWithBeginOfText()
    {
        var tokenizer = Llama3Tokenizer.Instance;

        tokenizer.Encode("Hello", addBos: true).Should().Equal([BeginOfText, .. tokenizer.Encode("Hello")]);
    }

    [Fact]
    public void InterfaceEncode_AddsNoBos()
    {
        ITextTokenizer tokenizer = Llama3Tokenizer.Instance;

        tokenizer.Encode("Hello").Should().Equal(9906);
    }

    // Reference ids from Hugging Face tokenizers (Rust, through the Tokenizers.DotNet 1.4.1 wrapper) with the
    // fixture's tokenizer.json. These are the inputs where Microsoft.ML.Tokenizers alone differs from it.
    [Theory]
    [InlineData("𝟙𝟚𝟛 x𝐀𝐁𝐂", new[] { 57352, 253, 247, 57352, 253, 248, 57352, 253, 249, 865, 57352, 238, 222, 57352, 238, 223, 57352, 238, 224 })]
    [InlineData("😀abc", new[] { 76460, 222, 13997 })]
    [InlineData("Gothic 𐌰𐌱𐌲 word 𠀀𠀁", new[] { 38, 8942, 292, 109697, 238, 234, 108, 172, 238, 234, 109, 172, 238, 234, 110, 3492, 109697, 64319, 222, 172, 64319, 223 })]
    [InlineData(" việc", new[] { 100769 })]
    [InlineData(" jeho", new[] { 101503 })]
    [InlineData("Tiếng Việt: nhiều việc hợp", new[] { 46451, 27160, 983, 101798, 25, 100937, 100769, 100827 })]
    public void Encode_MatchesTheReferenceWhereTheLibraryAloneWouldNot(string text, int[] expected)
    {
        Llama3Tokenizer.Instance.Encode(text).Should().Equal(expected);
        Llama3Tokenizer.Instance.Decode(expected).Should().Be(text);
    }

    [Fact]
    public void TryGetTokenId_FindsAddedAndByteLevelTokens()
    {
        var tokenizer = Llama3Tokenizer.Instance;

        tokenizer.TryGetTokenId("<|eot_id|>", out int eot).Should().BeTrue();
        eot.Should().Be(EndOfTurn);
        tokenizer.TryGetTokenId("Ġthe", out int the).Should().BeTrue();
        tokenizer.Encode(" the").Should().Equal(the);
        tokenizer.TryGetTokenId("no such token", out _).Should().BeFalse();
    }

    [Fact]
    public void Decode_SkipsIdsOutsideTheVocabulary_AsTheReferenceDoes()
    {
        var tokenizer = Llama3Tokenizer.Instance;
        int hello = tokenizer.Encode("Hello").Single();

        tokenizer.Decode([hello, tokenizer.VocabSize + 5, -1, hello]).Should().Be("HelloHello");
    }

    [Fact]
    public void Decode_OfHalfACharacter_IsReplacementCharacter()
    {
        var tokenizer = Llama3Tokenizer.Instance;
        tokenizer.TryGetTokenId("ðŁ", out int firstHalfOfAnEmoji).Should().BeTrue(); // bytes F0 9F

        tokenizer.Decode([firstHalfOfAnEmoji]).Should().Be("\uFFFD");
    }

    [Fact]
    public void EmptyText_HasNoIds() => Llama3Tokenizer.Instance.Encode(string.Empty).Should().BeEmpty();
}
