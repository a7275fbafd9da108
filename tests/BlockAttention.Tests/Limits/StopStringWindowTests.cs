using System.Text;
using BlockAttention.Generation;

namespace BlockAttention.Tests.Limits;

/// <summary>
/// Stop strings are looked for only in the text a new piece can complete; on random pieces that
/// finds exactly what searching the whole text each time finds.
/// </summary>
public class StopStringWindowTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public void The_windowed_search_cuts_where_a_search_of_the_whole_text_cuts(int seed)
    {
        var random = new Random(seed);
        string[] stops = [.. Enumerable.Range(0, random.Next(1, 4)).Select(_ => RandomText(random, random.Next(1, 6)))];
        var matcher = new StopStringMatcher(stops);
        var text = new StringBuilder();
        string whole = "";
        for (int piece = 0; piece < 400; piece++)
        {
            string next = RandomText(random, random.Next(0, 4));
            bool cut = matcher.AppendAndCut(text, next);

            whole += next;
            int expected = stops.Select(s => whole.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
            cut.Should().Be(expected >= 0, $"piece {piece}, stops [{string.Join(", ", stops)}]");
            if (cut)
            {
                text.ToString().Should().Be(whole[..expected]);
                return;
            }

            text.ToString().Should().Be(whole);
            int holdBack = stops.Select(s => Enumerable.Range(1, Math.Min(s.Length - 1, whole.Length)).Where(n => whole.EndsWith(s[..n], StringComparison.Ordinal)).DefaultIfEmpty(0).Max()).Max();
            matcher.SafeLength(text).Should().Be(whole.Length - holdBack);
        }
    }

    // A three-letter alphabet, so stop strings turn up and overlap their own prefixes.
    private static string RandomText(Random random, int length) => new([.. Enumerable.Range(0, length).Select(_ => "abc"[random.Next(3)])]);
}
