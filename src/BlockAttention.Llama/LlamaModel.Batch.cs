using BlockAttention.Attention;
using BlockAttention.Models;
using static TorchSharp.torch;

namespace BlockAttention.Llama;

/// <summary>The batched forward pass: several sequences' steps in one pass, each attending to its own cache.</summary>
public sealed partial class LlamaModel : IBatchForward
{
    /// <summary>
    /// True on the CPU for a cache without a prefix, and on CUDA for a cache over cached blocks
    /// (unless <c>BLOCKATTENTION_CUDA_BATCH=0</c>); otherwise the session runs the steps one by one.
    /// </summary>
    public bool CanBatch(KvCache cache) =>
        cache is not null && ((cache.Prefix is null && Info.Device.type == TorchSharp.DeviceType.CPU) || CanBatchOnCuda(cache));

    /// <inheritdoc />
    /// <remarks>Thread-safe as <see cref="Forward"/> is: calls may run concurrently, each with its own caches.</remarks>
    /// <exception cref="ObjectDisposedException">The model was disposed (before the call; a call in flight completes).</exception>
    public Tensor? ForwardBatch(IReadOnlyList<ForwardStep> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        BeginForward();
        try
        {
            return ForwardBatchCore(steps);
        }
        finally
        {
            EndForward();
        }
    }

    private Tensor? ForwardBatchCore(IReadOnlyList<ForwardStep> steps)
    {
        if (steps.Count == 0)
        {
            throw new ArgumentException("at least one step is needed", nameof(steps));
        }

        var starts = new int[steps.Count];
        var seen = new HashSet<KvCache>(ReferenceEqualityComparer.Instance);
        int rows = 0, kept = 0;
        for (int i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            if (!CanBatch(step.Cache))
            {
                throw new ArgumentException($"step {i}: this cache cannot be batched (CanBatch is false)", nameof(steps));
            }

            if (!seen.Add(step.Cache))
            {
                throw new ArgumentException($"step {i} uses the same cache as an earlier step", nameof(steps));
            }

            starts[i] = ValidateStep(step.Tokens.Span, step.Cache, step.LogitsToKeep, null);
            rows = checked(rows + step.Tokens.Length);
            kept += step.LogitsToKeep;
        }

        if (Info.Device.type == TorchSharp.DeviceType.CUDA)
        {
            return ForwardBatchInPlace(steps, starts, rows, kept);
        }

        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var ids = new int[rows];
        var positions = new long[rows];
        var parts = new List<BatchPart>(steps.Count);
        var keptRows = new List<long>(kept);
        int row = 0;
        for (int i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            int count = step.Tokens.Length;
            step.Tokens.Span.CopyTo(ids.AsSpan(row));
            for (int r = 0; r < count; r++)
            {
                positions[row + r] = starts[i] + r;
            }

            // Each sequence's own attention plan, exactly as a call with it alone makes it.
            var plan = AttentionPlan.Create(_shape, starts[i], count, null, Info.DType, Info.Device, _matmulAttention, AttentionScoreBudget);
            RecordMask(plan.MaskElements);
            parts.Add(new BatchPart(row, count, step.Cache, plan));
            for (int r = count - step.LogitsToKeep; r < count; r++)
            {
                keptRows.Add(row + r);
            }

            row += count;
        }

        try
        {
            // Every row's rotation gathered from the same table a lone call slices: the same values.
            using var table = Rotary.Angles(0, positions.Max() + 1, Info.Device, Info.DType);
            using var rowPositions = tensor(positions, ScalarType.Int64, Info.Device);
            using var angles = new RotaryAngles(table.Cos.index_select(0, rowPositions), table.SignedSin.index_select(0, rowPositions));
            var x = _embedding.index_select(0, TokenTensor(ids));
            for (int i = 0; i < _layers.Length; i++)
            {
                var next = _layers[i].ForwardBatch(x, i, angles, parts);
                x.Dispose();
                x = next;
            }

            foreach (var step in steps)
            {
                step.Cache.Advance(step.Tokens.Length);
            }

            if (kept == 0)
            {
                return null;
            }

            var last = x.index_select(0, tensor(keptRows.ToArray(), ScalarType.Int64, Info.Device));
            var logits = RowTiles.Linear(RmsNorm.Apply(last, _finalNorm, _shape.RmsNormEps), _lmHead);
            return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
        }
        finally
        {
            foreach (var part in parts)
            {
                part.Plan.Dispose();
            }
        }
    }
}
