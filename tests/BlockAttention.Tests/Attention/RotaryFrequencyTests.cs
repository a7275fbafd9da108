using BlockAttention.Attention;

namespace BlockAttention.Tests.Attention;

/// <summary>RoPE inverse frequencies against values computed here, in double, from the formulas of DESIGN.md §3.</summary>
public class RotaryFrequencyTests
{
    [Theory]
    [InlineData(500000.0, 8)]   // tiny-llama3: one frequency in each of the three llama3 regimes
    [InlineData(500000.0, 128)] // Llama 3.1 8B
    public void Llama3_scaled_frequencies_match_the_formula_in_all_three_regimes(double theta, int headDim)
    {
        const double Factor = 8, Low = 1, High = 4, Original = 8192;
        var rotary = RotaryEmbedding.Llama3(theta, headDim, Factor, Low, High, (int)Original);
        var regimes = new HashSet<string>();

        for (int i = 0; i < headDim / 2; i++)
        {
            double frequency = Math.Pow(theta, -2.0 * i / headDim);
            double wavelength = 2 * Math.PI / frequency;
            double expected;
            if (wavelength < Original / High)
            {
                expected = frequency;
                regimes.Add("kept");
            }
            else if (wavelength > Original / Low)
            {
                expected = frequency / Factor;
                regimes.Add("divided");
            }
            else
            {
                double smooth = (Original / wavelength - Low) / (High - Low);
                expected = (1 - smooth) * frequency / Factor + smooth * frequency;
                regimes.Add("interpolated");
            }

            rotary.InverseFrequencies[i].Should().BeApproximately((float)expected, (float)(expected * 2e-6), $"frequency {i} of {headDim / 2}");
        }

        regimes.Should().BeEquivalentTo(["kept", "divided", "interpolated"]);
    }

    [Fact]
    public void Default_frequencies_are_theta_to_the_minus_2i_over_d()
    {
        var rotary = RotaryEmbedding.Default(10000, 8);

        rotary.InverseFrequencies.Select(f => (double)f).Should().Equal(
            [1.0, Math.Pow(10000, -0.25), Math.Pow(10000, -0.5), Math.Pow(10000, -0.75)],
            (a, b) => Math.Abs(a - b) <= 2e-6 * b);
        rotary.HeadDim.Should().Be(8);
    }

    [Fact]
    public void Invalid_llama3_settings_fail_with_the_values_named()
    {
        var act = () => RotaryEmbedding.Llama3(500000, 8, 8, lowFreqFactor: 4, highFreqFactor: 1, originalMaxPositions: 8192);

        act.Should().Throw<ArgumentException>().WithMessage("*low_freq_factor 4*high_freq_factor 1*");
    }
}
