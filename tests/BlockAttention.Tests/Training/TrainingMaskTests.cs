using BlockAttention.Training.Data;
using BlockAttention.Training.Modeling;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Training;

public sealed class TrainingMaskTests
{
    [Fact]
    public void Block_sample_local_blocks_see_only_themselves_and_the_rest_sees_everything_before()
    {
        // Blocks [0,3) [3,5) local; final block and response [5,9).
        var sample = new TrainingSample(new int[9], new int[9], [3, 2], BlockAttention: true);
        using var mask = TrainingMask.Allowed(sample, CPU);
        bool[,] expected =
        {
            { true, false, false, false, false, false, false, false, false },
            { true, true, false, false, false, false, false, false, false },
            { true, true, true, false, false, false, false, false, false },
            { false, false, false, true, false, false, false, false, false },
            { false, false, false, true, true, false, false, false, false },
            { true, true, true, true, true, true, false, false, false },
            { true, true, true, true, true, true, true, false, false },
            { true, true, true, true, true, true, true, true, false },
            { true, true, true, true, true, true, true, true, true },
        };
        for (int i = 0; i < 9; i++)
        {
            for (int j = 0; j < 9; j++)
            {
                mask[i, j].item<bool>().Should().Be(expected[i, j], $"row {i}, column {j}");
            }
        }
    }

    [Fact]
    public void Batch_mask_pads_each_sample_to_the_longest_and_padding_rows_see_only_themselves()
    {
        var block = new TrainingSample(new int[5], new int[5], [2, 1], BlockAttention: true);
        var full = new TrainingSample(new int[3], new int[3], [1], BlockAttention: false);
        using var mask = TrainingMask.Allowed([block, full], CPU);
        mask.shape.Should().Equal(2, 5, 5);
        // Written out by hand: block sample [0,2) [2,3) local, [3,5) final; full sample causal over 3 tokens then 2 padding rows.
        bool[,,] expected =
        {
            {
                { true, false, false, false, false },
                { true, true, false, false, false },
                { false, false, true, false, false },
                { true, true, true, true, false },
                { true, true, true, true, true },
            },
            {
                { true, false, false, false, false },
                { true, true, false, false, false },
                { true, true, true, false, false },
                { false, false, false, true, false },
                { false, false, false, false, true },
            },
        };
        for (int b = 0; b < 2; b++)
        {
            for (int i = 0; i < 5; i++)
            {
                for (int j = 0; j < 5; j++)
                {
                    mask[b, i, j].item<bool>().Should().Be(expected[b, i, j], $"sample {b}, row {i}, column {j}");
                }
            }
        }
    }

    [Fact]
    public void Full_sample_is_causal_whatever_its_blocks()
    {
        var sample = new TrainingSample(new int[6], new int[6], [2, 2], BlockAttention: false);
        using var mask = TrainingMask.Allowed(sample, CPU);
        for (int i = 0; i < 6; i++)
        {
            for (int j = 0; j < 6; j++)
            {
                mask[i, j].item<bool>().Should().Be(j <= i);
            }
        }
    }

    [Fact]
    public void Local_blocks_that_leave_no_final_block_are_refused()
    {
        var act = () => TrainingMask.Allowed(4, [2, 2], CPU);
        act.Should().Throw<ArgumentException>().WithMessage("*no final block*");
    }
}
