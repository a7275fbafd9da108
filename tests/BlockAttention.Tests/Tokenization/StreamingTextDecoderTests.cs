using System.Text;
using BlockAttention.Text;

namespace BlockAttention.Tests.Tokenization;

public class StreamingTextDecoderTests
{
    [Theory]
    [InlineData("Emoji 😀🚀 and accents: naïve café über")]
    [InlineData("中文分词测试 日本語のテキスト 한국어")]
    [InlineData("- Title: Xawery Żuławski\nŁódź")]
    [InlineData("👨‍👩‍👧‍👦 🇫🇷 𝟙𝟚𝟛 𠀀<|eot_id|>done")]
    public void RealTokenizer_StreamsTheFullDecodingWithoutReplacementCharacters(string text)
    {
        var tokenizer = Llama3Tokenizer.Instance;
        IReadOnlyList<int> ids = tokenizer.Encode(text);

        List<string> pieces = Stream(tokenizer, ids);

        string.Concat(pieces).Should().Be(tokenizer.Decode(ids)).And.Be(text);
        pieces.Should().NotContain(piece => piece.Contains('\uFFFD'));
    }

    [Theory]
    [InlineData("中文 😀 Ż")]
    [InlineData("🚀🚀🚀")]
    public void RealTokenizer_OneByteTokens_EmitOnlyWholeCharacters(string text)
    {
        // Spell the text one byte-level token per UTF-8 byte, so that every character spans several tokens.
        var tokenizer = Llama3Tokenizer.Instance;
        int[] ids = [.. Encoding.UTF8.GetBytes(text).Select(b => ByteToken(tokenizer, b))];

        List<string> pieces = Stream(tokenizer, ids);

        string.Concat(pieces).Should().Be(text);
        pieces.Should().NotContain(piece => piece.Contains('\uFFFD'));
        pieces.Where(p => p.Length > 0).Should().OnlyContain(p => !char.IsHighSurrogate(p[p.Length - 1]), "a piece never ends in half a surrogate pair");
    }

    [Fact]
    public void HoldsBackAnIncompleteCharacter_ThenReleasesIt()
    {
        var decoder = new StreamingTextDecoder(new ByteTokenizer());
        byte[] euro = Encoding.UTF8.GetBytes("€"); // E2 82 AC

        decoder.Append('a').Should().Be("a");
        decoder.Append(euro[0]).Should().BeEmpty();
        decoder.Append(euro[1]).Should().BeEmpty();
        decoder.Append(euro[2]).Should().Be("€");
        decoder.Append('b').Should().Be("b");
        decoder.Flush().Should().BeEmpty();
    }

    [Fact]
    public void Flush_ReturnsAnUnfinishedCharacterAsTheFullDecodingShowsIt()
    {
        var tokenizer = new ByteTokenizer();
        var decoder = new StreamingTextDecoder(tokenizer);
        int[] ids = ['o', 'k', 0xF0, 0x9F];

        string streamed = string.Concat(ids.Select(decoder.Append)) + decoder.Flush();

        streamed.Should().Be(tokenizer.Decode(ids)).And.Be("ok\uFFFD");
    }

    [Fact]
    public void InvalidBytesFollowedByText_AreEmittedAsTheFullDecodingShowsThem()
    {
        var tokenizer = new ByteTokenizer();
        var decoder = new StreamingTextDecoder(tokenizer);
        int[] ids = ['a', 0x80, 0xFF, 'b', 'c'];

        List<string> pieces = [.. ids.Select(decoder.Append), decoder.Flush()];

        string.Concat(pieces).Should().Be(tokenizer.Decode(ids));
    }

    [Fact]
    public void DecodesAWindow_NotTheWholeHistory()
    {
        var tokenizer = new ByteTokenizer();
        var decoder = new StreamingTextDecoder(tokenizer);
        byte[] text = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("Block attention 😀 中文. ", 400)));

        var output = new StringBuilder();
        foreach (byte b in text)
        {
            output.Append(decoder.Append(b));
        }

        output.Append(decoder.Flush());
        output.ToString().Should().Be(Encoding.UTF8.GetString(text));

        // Re-decoding the history would cost about n²/2 = 50 million ids here; a window costs a few per step.
        tokenizer.IdsDecoded.Should().BeLessThan(8L * text.Length);
    }

    private static List<string> Stream(ITextTokenizer tokenizer, IReadOnlyList<int> ids)
    {
        var decoder = new StreamingTextDecoder(tokenizer);
        List<string> pieces = [.. ids.Select(decoder.Append), decoder.Flush()];
        decoder.TokenCount.Should().Be(ids.Count);
        return pieces;
    }

    private static int ByteToken(Llama.Tokenization.LlamaTokenizer tokenizer, byte value)
    {
        // Byte-level BPE spells byte b as one character: printable Latin-1 as itself, the rest shifted past 255.
        int shifted = 0;
        for (int b = 0; b < value; b++)
        {
            shifted += IsPrintable(b) ? 0 : 1;
        }

        string token = IsPrintable(value) ? ((char)value).ToString() : ((char)(256 + shifted)).ToString();
        tokenizer.TryGetTokenId(token, out int id).Should().BeTrue();
        return id;

        static bool IsPrintable(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
    }

    /// <summary>A tokenizer whose ids are bytes: the smallest model of byte-level decoding.</summary>
    private sealed class ByteTokenizer : ITextTokenizer
    {
        public long IdsDecoded { get; private set; }

        public IReadOnlyList<int> Encode(string text) => [.. Encoding.UTF8.GetBytes(text).Select(b => (int)b)];

        public string Decode(IReadOnlyList<int> ids)
        {
            IdsDecoded += ids.Count;
            return Encoding.UTF8.GetString([.. ids.Select(id => (byte)id)]);
        }
    }
}
