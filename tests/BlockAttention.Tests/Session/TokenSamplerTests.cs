using BlockAttention.Generation;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Session;

/// <summary>
/// Sampling with top-k selects the k best tokens without sorting the vocabulary; it must pick
/// exactly what sorting every candidate picks. The oracle below is that full sort, written out
/// here on its own (most likely first, ties by id), fed by a generator with the same seed.
/// </summary>
public class TokenSamplerTests
{
    [Fact]
    public void Only_a_greedy_samplers_pick_counts_as_greedy()
    {
        // A batch takes the argmax of all rows at once only for these picks; a sampling or foreign
        // pick must keep its own code.
        var greedy = new TokenSampler(new GenerationOptions { Temperature = 0 });
        var sampling = new TokenSampler(new GenerationOptions { Temperature = 0.7f, Seed = 1 });
        Assert.True(TokenSampler.IsGreedy(greedy.Next));
        Assert.False(TokenSampler.IsGreedy(sampling.Next));
        Assert.False(TokenSampler.IsGreedy(logits => 0));
        Assert.False(TokenSampler.IsGreedy(null));
        using var logits = tensor(new float[] { 0.5f, 3f, 3f, -1f });
        Assert.Equal(1, greedy.Next(logits)); // the first largest logit, as argmax over a batch's rows gives
        using var rows = stack([logits, tensor(new float[] { 9f, 0f, 9f, 1f })]);
        Assert.Equal(new long[] { 1, 0 }, rows.argmax(1).data<long>().ToArray());
    }

    [Theory]
    [InlineData(1, 1f, 0.7f)]
    [InlineData(5, 1f, 1.3f)]
    [InlineData(50, 1f, 0.8f)]
    [InlineData(50, 0.9f, 0.8f)]
    [InlineData(3, 0.5f, 2f)]
    [InlineData(999, 0.95f, 1f)]
    [InlineData(0, 0.9f, 0.8f)]
    [InlineData(0, 1f, 1f)]
    public void Top_k_selection_picks_what_a_full_sort_picks(int topK, float topP, float temperature)
    {
        const int vocab = 1000, tokens = 200;
        var options = new GenerationOptions { Temperature = temperature, TopK = topK, TopP = topP, Seed = 17 };
        var sampler = new TokenSampler(options);
        var oracle = new Random(17);
        var data = new Random(topK * 31 + (int)(topP * 100));
        for (int t = 0; t < tokens; t++)
        {
            var logits = new float[vocab];
            for (int i = 0; i < vocab; i++)
            {
                // Coarse values: many exact ties, at the top-k boundary too; some tokens masked out.
                logits[i] = data.Next(8) == 0 ? float.NegativeInfinity : data.Next(-40, 40) / 4f;
            }

            logits[data.Next(vocab)] = 10f; // a clear favourite now and then shares the top with ties
            Assert.Equal(FullSort(logits, options, oracle), sampler.Sample(logits));
        }
    }

    [Fact]
    public void Picks_from_a_row_view_of_a_larger_tensor()
    {
        // The session hands the sampler one row of a batch's logits: a view with a storage offset.
        var options = new GenerationOptions { Temperature = 0.8f, TopK = 4, Seed = 3 };
        var sampler = new TokenSampler(options);
        var oracle = new Random(3);
        var rows = new float[3 * 64];
        var data = new Random(5);
        for (int i = 0; i < rows.Length; i++)
        {
            rows[i] = data.Next(-20, 20) / 2f;
        }

        using var batch = tensor(rows, [3, 64]);
        for (int row = 0; row < 3; row++)
        {
            using var view = batch[row];
            Assert.Equal(FullSort(rows.AsSpan(row * 64, 64).ToArray(), options, oracle), sampler.Next(view));
        }
    }

    private static int FullSort(float[] logits, GenerationOptions options, Random random)
    {
        double max = double.NegativeInfinity;
        foreach (float logit in logits)
        {
            max = Math.Max(max, logit);
        }

        var order = Enumerable.Range(0, logits.Length)
            .Select(i => (Id: i, P: Math.Exp((logits[i] - max) / options.Temperature)))
            .OrderByDescending(c => c.P).ThenBy(c => c.Id).ToArray();
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            sum += Math.Exp((logits[i] - max) / options.Temperature);
        }

        int keep = options.TopK > 0 ? Math.Min(options.TopK, order.Length) : order.Length;
        if (options.TopP < 1)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += order[i].P / sum;
                if (cumulative >= options.TopP)
                {
                    keep = i + 1;
                    break;
                }
            }
        }

        double total = order.Take(keep).Aggregate(0.0, (s, c) => s + c.P);
        double target = random.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            target -= order[i].P;
            if (target <= 0)
            {
                return order[i].Id;
            }
        }

        return order[keep - 1].Id;
    }
}
