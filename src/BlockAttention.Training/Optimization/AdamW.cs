using BlockAttention.Runtime;
using static TorchSharp.torch;

namespace BlockAttention.Training.Optimization;

/// <summary>
/// AdamW (decoupled weight decay), as <c>torch.optim.AdamW</c> computes it, with its moment
/// estimates exposed so that a checkpoint can save and restore them. Weight decay applies to
/// matrices only, not to norm weights (one-dimensional), as the Hugging Face trainer does.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly IReadOnlyDictionary<string, Tensor> _parameters;
    private readonly Dictionary<string, Tensor> _first = [];
    private readonly Dictionary<string, Tensor> _second = [];

    /// <summary>An optimizer over <paramref name="parameters"/> (leaf tensors with gradients).</summary>
    public AdamW(IReadOnlyDictionary<string, Tensor> parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0.0)
    {
        _parameters = parameters ?? throw new ArgumentNullException(nameof(parameters));
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        foreach (var (name, p) in parameters)
        {
            _first[name] = zeros_like(p).requires_grad_(false);
            _second[name] = zeros_like(p).requires_grad_(false);
        }
    }

    /// <summary>Exponential decay of the first moment.</summary>
    public double Beta1 { get; }

    /// <summary>Exponential decay of the second moment.</summary>
    public double Beta2 { get; }

    /// <summary>Added to the denominator.</summary>
    public double Epsilon { get; }

    /// <summary>Decoupled weight decay (multiplied by the learning rate).</summary>
    public double WeightDecay { get; }

    /// <summary>Updates taken so far (bias correction depends on it).</summary>
    public long Steps { get; set; }

    /// <summary>The moments, named <c>exp_avg.{name}</c> and <c>exp_avg_sq.{name}</c>, for saving.</summary>
    public IEnumerable<KeyValuePair<string, Tensor>> State =>
        _first.Select(p => KeyValuePair.Create("exp_avg." + p.Key, p.Value)).Concat(_second.Select(p => KeyValuePair.Create("exp_avg_sq." + p.Key, p.Value)));

    /// <summary>Restores a moment saved under <paramref name="name"/> (a name from <see cref="State"/>).</summary>
    public void Restore(string name, Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var (table, key) = name.StartsWith("exp_avg_sq.", StringComparison.Ordinal) ? (_second, name["exp_avg_sq.".Length..])
            : name.StartsWith("exp_avg.", StringComparison.Ordinal) ? (_first, name["exp_avg.".Length..])
            : throw new ArgumentException($"'{name}' is not an optimizer state name", nameof(name));
        if (!table.TryGetValue(key, out var target) || !target.shape.SequenceEqual(value.shape))
        {
            throw new ArgumentException($"optimizer state '{name}' does not match the model", nameof(name));
        }

        using var noGrad = no_grad();
        target.copy_(value);
    }

    /// <summary>Applies one update with learning rate <paramref name="lr"/> from the parameters' current gradients.</summary>
    public void Step(double lr)
    {
        Steps++;
        double correction1 = 1 - Math.Pow(Beta1, Steps), correction2 = 1 - Math.Pow(Beta2, Steps);
        using var noGrad = no_grad();
        foreach (var (name, p) in _parameters)
        {
            using var scope = NewDisposeScope();
            var grad = p.grad;
            if (grad is null)
            {
                continue;
            }

            // Every number is an explicit scalar disposed after the update (see Scalars).
            if (WeightDecay != 0 && p.ndim > 1)
            {
                using var decay = Scalars.Of(1 - lr * WeightDecay);
                p.mul_(decay);
            }

            using var beta1 = Scalars.Of(Beta1);
            using var oneMinusBeta1 = Scalars.Of(1 - Beta1);
            using var beta2 = Scalars.Of(Beta2);
            using var oneMinusBeta2 = Scalars.Of(1 - Beta2);
            using var secondCorrection = Scalars.Of(Math.Sqrt(correction2));
            using var epsilon = Scalars.Of(Epsilon);
            using var stepSize = Scalars.Of(-lr / correction1);
            var m = _first[name].mul_(beta1).add_(grad, alpha: oneMinusBeta1);
            var v = _second[name].mul_(beta2).addcmul_(grad, grad, value: oneMinusBeta2);
            var denominator = v.sqrt().div_(secondCorrection).add_(epsilon);
            p.addcdiv_(m, denominator, value: stepSize);
        }
    }

    /// <summary>Releases the moments.</summary>
    public void Dispose()
    {
        foreach (var t in _first.Values.Concat(_second.Values))
        {
            t.Dispose();
        }
    }
}
