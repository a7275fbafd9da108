namespace BlockAttention.Tests.Tokenization;

/// <summary>
/// Long runs of one character class, which are one piece for BPE, and random mixtures of all classes: the ids
/// must be the reference's. The runs of a million characters also guard against encoding time quadratic in a
/// piece's length (minutes per case); the bound is a hang guard, not a performance claim (benchmarks/README.md
/// has the throughput).
/// </summary>
public class LlamaTokenizerLongRunTests
{
    private static readonly TimeSpan HangGuard = TimeSpan.FromSeconds(60);

    public static TheoryData<int, string> Cases()
    {
        var data = new TheoryData<int, string>();
        for (int i = 0; i < TokenizerLongRuns.Cases.Count; i++)
        {
            data.Add(i, TokenizerLongRuns.Cases[i].Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Encode_GivesTheReferenceIds(int index, string name)
    {
        TokenizerLongRuns.Case run = TokenizerLongRuns.Cases[index];
        string text = run.Text();
        var tokenizer = Llama3Tokenizer.Instance;

        IReadOnlyList<int> ids = await Task.Run(() => tokenizer.Encode(text)).WaitAsync(HangGuard);

        ExpectSameIds(ids, run.Ids(), name);
    }

    [Fact]
    public void Fixture_HasEveryClass_AtAMillionCharactersForTheMainOnes()
    {
        var lengths = TokenizerLongRuns.Cases.ToDictionary(c => c.Name, c => c.Text().Length);

        foreach (string name in (string[])["letters, one", "digits, one", "spaces", "newlines", "CJK, one", "emoji, one", "combining marks alone", "lone high surrogates"])
        {
            lengths[name].Should().BeGreaterThanOrEqualTo(1_000_000, name);
        }

        lengths.Keys.Should().Contain(["mixture 1", "mixture 2", "mixture 3"]);
    }

    [Fact]
    public void TextCutAtAddedTokens_EncodesAsItsPartsDo()
    {
        // An independent check of the splitting around added tokens on a long text: the ids of the whole are the
        // ids of the parts between the special tokens, with each special token's id between them.
        var tokenizer = Llama3Tokenizer.Instance;
        string[] parts = [new string('a', 30_000), new string('\n', 20_000) + "x", string.Concat(Enumerable.Repeat("😀", 10_000))];
        int endOfTurn = tokenizer.SpecialTokens["<|eot_id|>"];

        IReadOnlyList<int> ids = tokenizer.Encode(string.Join("<|eot_id|>", parts));

        ExpectSameIds(ids, [.. tokenizer.Encode(parts[0]), endOfTurn, .. tokenizer.Encode(parts[1]), endOfTurn, .. tokenizer.Encode(parts[2])], "cut at <|eot_id|>");
    }

    private static void ExpectSameIds(IReadOnlyList<int> actual, IReadOnlyList<int> expected, string name)
    {
        // The first difference, rather than a dump of a hundred thousand ids.
        int common = Math.Min(actual.Count, expected.Count);
        int first = Enumerable.Range(0, common).FirstOrDefault(i => actual[i] != expected[i], common);
        if (first < common || actual.Count != expected.Count)
        {
            string Around(IReadOnlyList<int> ids) => string.Join(", ", ids.Skip(Math.Max(0, first - 3)).Take(8));
            Assert.Fail($"{name}: {actual.Count} ids, the reference has {expected.Count}; first difference at {first}: " +
                $"[{Around(actual)}] against the reference's [{Around(expected)}]");
        }
    }
}
