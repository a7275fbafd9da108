namespace BlockAttention.Tests.Tokenization;

public class LlamaTokenizerGoldenTests
{
    // The index and a short label keep test names readable; the case itself is looked up by index.
    public static TheoryData<int, string> Cases()
    {
        var data = new TheoryData<int, string>();
        for (int i = 0; i < TokenizerGolden.Cases.Count; i++)
        {
            string text = TokenizerGolden.Cases[i].Text;
            data.Add(i, text.Length <= 32 ? text : text[..32] + "…");
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Encode_GivesTheReferenceIds(int index, string label)
    {
        _ = label;
        TokenizerGolden.Case golden = TokenizerGolden.Cases[index];

        Llama3Tokenizer.Instance.Encode(golden.Text).Should().Equal(golden.Ids);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode_GivesTheReferenceText(int index, string label)
    {
        _ = label;
        TokenizerGolden.Case golden = TokenizerGolden.Cases[index];

        Llama3Tokenizer.Instance.Decode(golden.Ids).Should().Be(golden.Decoded);
    }

    [Fact]
    public void Golden_HasTheFifteenCasesOfTheFixture() => TokenizerGolden.Cases.Should().HaveCount(15);
}
