using static TorchSharp.torch;

namespace BlockAttention.Generation;

/// <summary>
/// Picks the next token from float32 logits <c>[vocab]</c>: greedy on the device, or sampling
/// with temperature, top-k and top-p from a seeded generator on the CPU, so that a seed gives the
/// same tokens on every device.
/// </summary>
internal sealed class TokenSampler
{
    private readonly GenerationOptions _options;
    private readonly Random? _random;

    public TokenSampler(GenerationOptions options)
    {
        _options = options;
        if (options.Temperature > 0)
        {
            _random = options.Seed is int seed ? new Random(seed) : new Random();
        }
    }

    public int Next(Tensor logits)
    {
        if (_random is null)
        {
            using var best = logits.argmax();
            return (int)best.item<long>();
        }

        using var cpu = logits.to(ScalarType.Float32, CPU);
        return Sample(cpu.data<float>().ToArray());
    }

    private int Sample(float[] logits)
    {
        // Softmax over logits / T, in double for a stable, device-independent order of sums.
        double max = logits.Max();
        var candidates = new (int Id, double P)[logits.Length];
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            double p = Math.Exp((logits[i] - max) / _options.Temperature);
            candidates[i] = (i, p);
            sum += p;
        }

        // Most likely first; ties by id, so the order is fully determined.
        Array.Sort(candidates, (a, b) => a.P != b.P ? b.P.CompareTo(a.P) : a.Id.CompareTo(b.Id));
        int keep = _options.TopK > 0 ? Math.Min(_options.TopK, candidates.Length) : candidates.Length;
        if (_options.TopP < 1)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += candidates[i].P / sum;
                if (cumulative >= _options.TopP)
                {
                    keep = i + 1;
                    break;
                }
            }
        }

        double total = 0;
        for (int i = 0; i < keep; i++)
        {
            total += candidates[i].P;
        }

        double target = _random!.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            target -= candidates[i].P;
            if (target <= 0)
            {
                return candidates[i].Id;
            }
        }

        return candidates[keep - 1].Id;
    }
}
