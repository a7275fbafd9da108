using System.Globalization;
using BlockAttention.Llama.Tokenization;

namespace BlockAttention.Tests.Tokenization;

public class PreTokenSplitterTests
{
    [Fact]
    public void EveryStandIn_HasItsCategory_AndIsNotAscii()
    {
        foreach (UnicodeCategory category in Enum.GetValues<UnicodeCategory>())
        {
            char standIn = CategoryStandIns.For(category);

            CharUnicodeInfo.GetUnicodeCategory(standIn).Should().Be(category);
            char.IsAscii(standIn).Should().BeFalse();
        }
    }

    [Fact]
    public void WhiteSpaceStandIns_AreOnlyForSeparators()
    {
        foreach (UnicodeCategory category in Enum.GetValues<UnicodeCategory>())
        {
            bool separator = category is UnicodeCategory.SpaceSeparator or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator;
            char.IsWhiteSpace(CategoryStandIns.For(category)).Should().Be(separator, category.ToString());
        }
    }
}
