using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace BlockAttention.Generation;

/// <summary>
/// Picks the next token from float32 logits <c>[vocab]</c>: greedy on the device, or sampling
/// with temperature, top-k and top-p from a seeded generator on the CPU, so that a seed gives the
/// same tokens on every device.
/// </summary>
/// <remarks>
/// Candidates are ordered by probability, most likely first, ties by id. With top-k only the k
/// best are selected (one pass over the vocabulary) and sorted, which picks exactly the tokens a
/// full sort would, without sorting the whole vocabulary for every token. One sampler serves one
/// request: its buffers are reused from token to token (not thread-safe).
/// </remarks>
internal sealed class TokenSampler
{
    private readonly GenerationOptions _options;
    private readonly Random? _random;
    private double[] _probabilities = [];
    private int[] _best = [];

    public TokenSampler(GenerationOptions options)
    {
        _options = options;
        if (options.Temperature > 0)
        {
            _random = options.Seed is int seed ? new Random(seed) : new Random();
        }
    }

    /// <summary>
    /// Whether <paramref name="pick"/> is a greedy sampler's <see cref="Next"/>: the argmax of the
    /// logits, which a batch can take for all its rows at once.
    /// </summary>
    public static bool IsGreedy(Func<Tensor, int>? pick) =>
        pick is { Target: TokenSampler { _random: null } } && pick.Method.Name == nameof(Next);

    public int Next(Tensor logits)
    {
        if (_random is null)
        {
            using var best = logits.argmax();
            return (int)best.item<long>();
        }

        using var cpu = logits.to(ScalarType.Float32, CPU);
        if (!cpu.is_contiguous())
        {
            using var packed = cpu.contiguous();
            return Sample(MemoryMarshal.Cast<byte, float>(packed.bytes));
        }

        return Sample(MemoryMarshal.Cast<byte, float>(cpu.bytes));
    }

    /// <summary>Samples from <paramref name="logits"/> (only while sampling: <see cref="GenerationOptions.Temperature"/> &gt; 0).</summary>
    internal int Sample(ReadOnlySpan<float> logits)
    {
        int k = _options.TopK > 0 ? Math.Min(_options.TopK, logits.Length) : logits.Length;
        if (k == logits.Length)
        {
            return SampleSorted(logits.ToArray());
        }

        // Softmax over logits / T, in double for a stable, device-independent order of sums.
        float maxLogit = float.NegativeInfinity;
        foreach (float logit in logits)
        {
            if (float.IsNaN(logit))
            {
                return SampleSorted(logits.ToArray()); // no total order: as before, whatever that gives
            }

            maxLogit = Math.Max(maxLogit, logit);
        }

        double max = maxLogit;
        if (_probabilities.Length != logits.Length)
        {
            _probabilities = new double[logits.Length];
        }

        var p = _probabilities;
        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            p[i] = Math.Exp((logits[i] - max) / _options.Temperature);
            if (double.IsNaN(p[i]))
            {
                return SampleSorted(logits.ToArray());
            }

            sum += p[i];
        }

        // The k best (most likely first, ties by id) through a heap whose root is the worst kept.
        if (_best.Length < k)
        {
            _best = new int[k];
        }

        var heap = _best;
        int count = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            if (count < k)
            {
                heap[count] = i;
                SiftUp(heap, count++, p);
            }
            else if (Compare(i, heap[0], p) < 0)
            {
                heap[0] = i;
                SiftDown(heap, k, p);
            }
        }

        Array.Sort(heap, 0, k, Comparer<int>.Create((a, b) => Compare(a, b, p)));
        int keep = k;
        if (_options.TopP < 1)
        {
            double cumulative = 0;
            for (int i = 0; i < keep; i++)
            {
                cumulative += p[heap[i]] / sum;
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
            total += p[heap[i]];
        }

        double target = _random!.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            target -= p[heap[i]];
            if (target <= 0)
            {
                return heap[i];
            }
        }

        return heap[keep - 1];
    }

    /// <summary>Negative when token <paramref name="a"/> comes before <paramref name="b"/>: more likely, or as likely with a smaller id.</summary>
    private static int Compare(int a, int b, double[] p) => p[a] != p[b] ? p[b].CompareTo(p[a]) : a.CompareTo(b);

    private static void SiftUp(int[] heap, int at, double[] p)
    {
        while (at > 0)
        {
            int parent = (at - 1) / 2;
            if (Compare(heap[at], heap[parent], p) <= 0)
            {
                return;
            }

            (heap[at], heap[parent]) = (heap[parent], heap[at]);
            at = parent;
        }
    }

    private static void SiftDown(int[] heap, int count, double[] p)
    {
        int at = 0;
        while (true)
        {
            int worst = at, left = 2 * at + 1, right = left + 1;
            if (left < count && Compare(heap[left], heap[worst], p) > 0)
            {
                worst = left;
            }

            if (right < count && Compare(heap[right], heap[worst], p) > 0)
            {
                worst = right;
            }

            if (worst == at)
            {
                return;
            }

            (heap[at], heap[worst]) = (heap[worst], heap[at]);
            at = worst;
        }
    }

    /// <summary>The whole vocabulary sorted: used without top-k (top-p alone needs the full order).</summary>
    private int SampleSorted(float[] logits)
    {
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
