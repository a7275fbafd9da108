using BlockAttention.Generation;
using BlockAttention.AspNetCore.Reference;

namespace BlockAttention.Server.Tests;

/// <summary>How /generate turns blocks and num_local_attention_blocks into a prompt, worked out by hand from the reference's rules.</summary>
public class ReferencePromptTests
{
    private static readonly string[] s_blocks = ["I\n", "A\n", "B\n", "Q\n"];

    [Theory]
    [InlineData(null, new[] { "I\n", "A\n", "B\n", "Q\n" }, AttentionMode.Block)]
    [InlineData(10000, new[] { "I\n", "A\n", "B\n", "Q\n" }, AttentionMode.Block)]
    [InlineData(3, new[] { "I\n", "A\n", "B\n", "Q\n" }, AttentionMode.Block)]
    [InlineData(2, new[] { "I\n", "A\n", "B\nQ\n" }, AttentionMode.Block)]
    [InlineData(1, new[] { "I\n", "A\nB\nQ\n" }, AttentionMode.Block)]
    [InlineData(0, new[] { "I\nA\nB\nQ\n" }, AttentionMode.Full)]
    public void Blocks_past_n_join_the_final_block_and_zero_is_full_attention(int? n, string[] expected, AttentionMode mode)
    {
        var (prompt, actualMode) = ReferencePrompt.Create(s_blocks, n);

        prompt.Blocks.Select(b => b.Text).Should().Equal(expected);
        actualMode.Should().Be(mode);
    }

    [Fact]
    public void A_single_block_is_full_attention()
    {
        var (prompt, mode) = ReferencePrompt.Create(["only\n"], null);

        prompt.Blocks.Select(b => b.Text).Should().Equal("only\n");
        mode.Should().Be(AttentionMode.Full);
    }
}
