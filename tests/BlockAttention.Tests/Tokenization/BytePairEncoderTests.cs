using System.Text;
using BlockAttention.Llama.Tokenization;

namespace BlockAttention.Tests.Tokenization;

/// <summary>
/// The priority-queue BPE merge against the textbook loop (rescan every adjacent pair, merge the lowest rank,
/// leftmost first, repeat until no pair has a merge), with the Llama 3.1 vocabulary and merges, on random pieces
/// of a few hundred bytes where the loop's quadratic cost does not matter.
/// </summary>
public class BytePairEncoderTests
{
    private static readonly Lazy<(BytePairEncoder Encoder, TextbookBpe Oracle)> s_subjects = new(() =>
    {
        TokenizerDefinition definition = TokenizerJsonReader.Read(Llama3Tokenizer.JsonPath);
        return (new BytePairEncoder(definition.Vocabulary, definition.Merges), new TextbookBpe(definition.Vocabulary, definition.Merges));
    });

    // Pieces the pre-tokenizer makes (words, runs, punctuation, emoji) and byte sequences it never would.
    private static readonly string[] s_alphabet =
        ["a", "e", "t", "h", "in", "the", " ", "\n", "\t", "0", "7", "中", "文", "😀", "👍🏽", "\u0301", "é", "!", "'s", "ğ", "\u200D", "\uFFFD"];

    [Fact]
    public void RandomPieces_MergeAsTheTextbookLoop()
    {
        var (encoder, oracle) = s_subjects.Value;
        var random = new Random(20261202);
        var scratch = new BytePairEncoder.Scratch();
        for (int trial = 0; trial < 300; trial++)
        {
            byte[] piece = trial % 3 == 2 ? RandomBytes(random) : Encoding.UTF8.GetBytes(RandomText(random));
            if (piece.Length == 0)
            {
                continue;
            }

            var ids = new List<int>();
            encoder.Encode(piece, ids, scratch);

            ids.Should().Equal(oracle.Encode(piece), $"trial {trial}, bytes {Convert.ToHexString(piece)}");
        }
    }

    [Theory]
    [InlineData("a", 800)]
    [InlineData("\n", 800)]
    [InlineData(" ", 800)]
    [InlineData("中", 500)]
    [InlineData("😀", 400)]
    [InlineData("ab", 700)]
    public void LongRepeats_MergeAsTheTextbookLoop(string unit, int repeat)
    {
        var (encoder, oracle) = s_subjects.Value;
        byte[] piece = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(unit, repeat)));
        var ids = new List<int>();

        encoder.Encode(piece, ids, new BytePairEncoder.Scratch());

        ids.Should().Equal(oracle.Encode(piece));
    }

    private static string RandomText(Random random)
    {
        var text = new StringBuilder();
        int parts = random.Next(1, 40);
        for (int i = 0; i < parts; i++)
        {
            text.Insert(text.Length, s_alphabet[random.Next(s_alphabet.Length)], random.Next(1, random.Next(2) == 0 ? 3 : 30));
        }

        return text.ToString();
    }

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(1, 300)];
        random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>BPE as first described: after every merge, rescan all adjacent pairs for the lowest-ranked one.</summary>
    private sealed class TextbookBpe(Dictionary<string, int> vocabulary, List<string> merges)
    {
        private readonly Dictionary<(string, string), int> _ranks = merges
            .Select((merge, rank) => (Pair: (merge.Split(' ')[0], merge.Split(' ')[1]), Rank: rank))
            .GroupBy(m => m.Pair)
            .ToDictionary(g => g.Key, g => g.Last().Rank); // a pair listed twice keeps its last rank, as in the reference

        public List<int> Encode(byte[] bytes)
        {
            List<string> symbols = [.. bytes.Select(b => ByteLevelAlphabet.ToChar(b).ToString())];
            while (true)
            {
                int best = -1;
                int bestRank = int.MaxValue;
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    if (_ranks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank)
                    {
                        (best, bestRank) = (i, rank);
                    }
                }

                if (best < 0)
                {
                    return [.. symbols.Select(s => vocabulary[s])];
                }

                symbols[best] += symbols[best + 1];
                symbols.RemoveAt(best + 1);
            }
        }
    }
}
