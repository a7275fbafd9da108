using BlockAttention.Attention;
using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Llama;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Limits;

/// <summary>
/// A long final block, or a long one-pass prompt, attends in chunks of query rows: the masks
/// stay within a budget linear in the prompt, and the logits equal those of a single pass.
/// </summary>
public class ChunkedAttentionTests
{
    // Two local blocks and a long final block: the shape that used to build a [group x n, prefix + n] mask.
    private static readonly int[][] s_blocks = [TinyRandomModels.Tokens(300, seed: 11), TinyRandomModels.Tokens(200, seed: 12), TinyRandomModels.Tokens(700, seed: 13)];
    private const int Total = 1200, Final = 700, Heads = 4, Group = 2;

    [Theory]
    [InlineData(AttentionImplementation.Sdpa)]
    [InlineData(AttentionImplementation.Matmul)]
    public void A_long_final_block_in_chunks_equals_one_pass_and_the_single_pass_with_a_bounded_mask(AttentionImplementation attention)
    {
        using var single = TinyRandomModels.Create(maxPositions: 4096, attention: attention);
        single.AttentionScoreBudget = long.MaxValue;
        using var chunked = TinyRandomModels.Create(maxPositions: 4096, attention: attention);
        const int rows = 64; // 700 rows: ten chunks of 64 and one of 60
        chunked.AttentionScoreBudget = (long)Heads * Total * rows;

        using var expected = FinalBlockLogits(single);
        using var actual = FinalBlockLogits(chunked);
        using var onePass = OnePassLogits(single);

        GoldenTensors.MaxAbsDiff(actual, expected).Should().BeLessThanOrEqualTo(1e-5, "chunking query rows is exact up to summation order");
        GoldenTensors.MaxAbsDiff(actual, onePass).Should().BeLessThanOrEqualTo(1e-4, "the cached formulation equals the masked one-pass formulation");
        single.PeakMaskElements.Should().Be((long)Group * Final * Total, "a single pass masks every query head row against every position");
        chunked.PeakMaskElements.Should().BeLessThanOrEqualTo((long)Group * rows * Total);
    }

    [Fact]
    public void A_caller_mask_is_applied_in_chunks_of_rows_with_the_same_result()
    {
        using var single = TinyRandomModels.Create(maxPositions: 4096);
        single.AttentionScoreBudget = long.MaxValue;
        using var chunked = TinyRandomModels.Create(maxPositions: 4096);
        chunked.AttentionScoreBudget = (long)Heads * Total * 100;

        using var expected = OnePassLogits(single);
        using var actual = OnePassLogits(chunked);

        GoldenTensors.MaxAbsDiff(actual, expected).Should().BeLessThanOrEqualTo(1e-5);
    }

    [Fact]
    public async Task The_one_pass_mode_builds_its_mask_one_chunk_of_rows_at_a_time()
    {
        var prompt = BlockPrompt.FromTokenizedBlocks(s_blocks);
        var options = new GenerationOptions { Mode = AttentionMode.BlockOnePass };
        using var wholeModel = TinyRandomModels.Create(maxPositions: 4096);
        using var whole = new BlockSession(wholeModel) { OnePassMaskElements = long.MaxValue };
        using var chunkedModel = TinyRandomModels.Create(maxPositions: 4096); // the same weights
        using var chunked = new BlockSession(chunkedModel) { OnePassMaskElements = 50L * Total }; // 24 chunks of 50 rows

        var expected = await whole.FirstTokenLogitsAsync(prompt, options);
        var actual = await chunked.FirstTokenLogitsAsync(prompt, options);

        wholeModel.PeakMaskElements.Should().Be((long)Total * Total, "one pass over the prompt masks every position against every position");
        chunkedModel.PeakMaskElements.Should().BeLessThanOrEqualTo(50L * Total);
        actual.Zip(expected).Max(p => Math.Abs(p.First - p.Second)).Should().BeLessThanOrEqualTo(1e-5f);
        var block = await chunked.FirstTokenLogitsAsync(prompt, options with { Mode = AttentionMode.Block });
        actual.Zip(block).Max(p => Math.Abs(p.First - p.Second)).Should().BeLessThanOrEqualTo(1e-4f);
    }

    [Fact]
    public void Mask_rows_of_a_prompt_of_a_hundred_thousand_tokens_are_built_without_overflow()
    {
        int[] lengths = [40_000, 30_000, 30_000];

        using var local = BlockMask.CreateRows(lengths, start: 39_995, count: 10); // the end of block 0, the start of block 1
        using var final = BlockMask.CreateRows(lengths, start: 99_990, count: 10);

        local.shape.Should().Equal(10, 40_005);
        final.shape.Should().Equal(10, 100_000);
        for (int r = 0; r < 10; r++)
        {
            long row = 39_995 + r, from = row < 40_000 ? 0 : 40_000;
            AllowedRange(local[r]).Should().Be((from, row), $"local row {row}");
            AllowedRange(final[r]).Should().Be((0, 99_990 + r), $"final row {99_990 + r}");
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void The_whole_mask_equals_the_rule_written_out_cell_by_cell(int seed)
    {
        var random = new Random(seed);
        var lengths = Enumerable.Range(0, random.Next(1, 6)).Select(_ => random.Next(0, 9)).Append(random.Next(1, 9)).ToList();
        int total = lengths.Sum();

        using var mask = BlockMask.Create(lengths);
        using var rows = BlockMask.CreateRows(lengths, total / 2, total - total / 2);

        var cells = mask.data<bool>().ToArray();
        var chunkCells = rows.data<bool>().ToArray();
        for (int row = 0, block = 0, blockStart = 0; row < total; row++)
        {
            while (row >= blockStart + lengths[block])
            {
                blockStart += lengths[block++];
            }

            bool isFinal = block == lengths.Count - 1;
            for (int column = 0; column < total; column++)
            {
                bool allowed = column <= row && (isFinal || column >= blockStart);
                cells[row * total + column].Should().Be(allowed, $"row {row}, column {column} of blocks [{string.Join(", ", lengths)}]");
                if (row >= total / 2 && column <= row)
                {
                    chunkCells[(row - total / 2) * total + column].Should().Be(allowed);
                }
            }
        }
    }

    /// <summary>Logits of every final-block token, blocks encoded alone and assembled (Block mode's prefill).</summary>
    private static Tensor FinalBlockLogits(LlamaModel model)
    {
        using var cache = model.CreateCache(Total);
        var encoded = s_blocks[..^1].Select(tokens => KvBlock.Encode(model, tokens)).ToList();
        BlockAssembler.Assemble(encoded, model.Rotary, cache);
        encoded.ForEach(b => b.Release());
        return model.Forward(s_blocks[^1], cache, Final)!;
    }

    /// <summary>The same logits from one forward pass over the whole prompt with the block mask.</summary>
    private static Tensor OnePassLogits(LlamaModel model)
    {
        using var cache = model.CreateCache(Total);
        using var mask = BlockMask.Create([.. s_blocks.Select(b => b.Length)]);
        return model.Forward([.. s_blocks.SelectMany(b => b)], cache, Final, mask)!;
    }

    /// <summary>The first and last allowed column of one mask row, which must be one contiguous run.</summary>
    private static (long First, long Last) AllowedRange(Tensor row)
    {
        using var allowed = row.nonzero();
        long count = allowed.shape[0];
        long first = allowed[0, 0].item<long>(), last = allowed[count - 1, 0].item<long>();
        (last - first + 1).Should().Be(count, "the allowed columns are contiguous");
        return (first, last);
    }
}
