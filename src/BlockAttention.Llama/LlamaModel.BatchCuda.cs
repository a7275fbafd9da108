using BlockAttention.Attention;
using BlockAttention.Attention.Cuda;
using BlockAttention.Models;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BlockAttention.Llama;

/// <summary>The batched forward pass on CUDA over cached blocks read in place.</summary>
public sealed partial class LlamaModel
{
    /// <summary>
    /// Whether batched steps run on CUDA (caches over cached blocks, fused layers). On by default
    /// (checked on an H200: verify on both fixture models in float32 and bfloat16 with batching on,
    /// the batched decode kernel bit for bit against each sequence alone, and 64 concurrent
    /// streaming clients of the server each given the answer it gets alone);
    /// <c>BLOCKATTENTION_CUDA_BATCH=0</c> runs CUDA steps one by one.
    /// </summary>
    private static readonly bool s_cudaBatch = Environment.GetEnvironmentVariable("BLOCKATTENTION_CUDA_BATCH") is not ("0" or "off" or "false");

    /// <summary>
    /// Rows per matrix product of a batched CUDA step (<c>BLOCKATTENTION_CUDA_BATCH_ROWS</c>,
    /// default 64): every product runs on tiles of exactly this many rows (zeros fill the last),
    /// so cuBLAS sees the same shape whatever the batch holds and a row's result does not depend
    /// on the other rows. In decode the products are bound by the weights' memory traffic, so 64
    /// rows cost about what one does.
    /// </summary>
    internal static readonly int CudaBatchRows = ParseBatchRows(Environment.GetEnvironmentVariable("BLOCKATTENTION_CUDA_BATCH_ROWS"));

    private bool CanBatchOnCuda(KvCache cache) =>
        s_cudaBatch && s_fusedLayers && cache.Prefix is not null && _segmentAttention is not null
        && Info.Device.type == TorchSharp.DeviceType.CUDA;

    internal static int ParseBatchRows(string? value) =>
        int.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int rows) && rows is >= 1 and <= 4096 ? rows : 64;

    /// <summary>
    /// The order of a batch's rows: the one-token steps first (one decode launch reads them as
    /// consecutive sequences), then the others, each step's rows together. Returns each step's
    /// first row and the decode steps in row order.
    /// </summary>
    internal static (int[] FirstRow, List<int> DecodeSteps) BatchRowOrder(IReadOnlyList<int> counts, bool decodeTogether)
    {
        var first = new int[counts.Count];
        var decode = new List<int>();
        int row = 0;
        if (decodeTogether)
        {
            for (int i = 0; i < counts.Count; i++)
            {
                if (counts[i] == 1)
                {
                    decode.Add(i);
                    first[i] = row++;
                }
            }
        }

        for (int i = 0; i < counts.Count; i++)
        {
            if (!decodeTogether || counts[i] != 1)
            {
                first[i] = row;
                row += counts[i];
            }
        }

        return (first, decode);
    }

    /// <summary>Rows padded up to a whole number of tiles of <paramref name="tile"/> rows.</summary>
    internal static int PaddedRows(int rows, int tile) => checked((rows + tile - 1) / tile * tile);

    /// <summary><c>x Wᵀ</c> on tiles of exactly <paramref name="tile"/> rows (<paramref name="x"/>'s rows are a multiple).</summary>
    private static Tensor TiledLinear(Tensor x, Tensor weight, int tile)
    {
        long n = x.shape[0];
        if (n == tile)
        {
            return F.linear(x, weight);
        }

        var parts = new List<Tensor>();
        try
        {
            for (long r = 0; r < n; r += tile)
            {
                using var rows = x.narrow(0, r, tile);
                parts.Add(F.linear(rows, weight));
            }

            return cat(parts, 0);
        }
        finally
        {
            foreach (var part in parts)
            {
                part.Dispose();
            }
        }
    }

    private Tensor? ForwardBatchInPlace(IReadOnlyList<ForwardStep> steps, int[] starts, int rows, int kept)
    {
        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var attention = _segmentAttention!;
        var kernels = attention.Decoder;
        int heads = _shape.Heads, kvHeads = _shape.KvHeads, headDim = _shape.HeadDim, tile = CudaBatchRows;
        var counts = steps.Select(step => step.Tokens.Length).ToArray();
        // With shared segments every row of the call is one member of one plan; otherwise the
        // one-token steps share a decode launch and each longer step has a plan of its own.
        bool allRowsShared = attention.PlansEveryRowShared;
        var (firstRow, decodeSteps) = BatchRowOrder(counts, !allRowsShared && attention.CanPlanBatch(1));
        int padded = PaddedRows(rows, tile);
        var ids = new int[padded];
        for (int i = 0; i < steps.Count; i++)
        {
            steps[i].Tokens.Span.CopyTo(ids.AsSpan(firstRow[i]));
        }

        var x = _embedding.index_select(0, TokenTensor(ids)); // the residual stream, updated in place
        if (padded > rows)
        {
            x.narrow(0, rows, padded - rows).zero_();
        }

        var plans = new List<(int Row, int Count, SegmentPlan Plan)>();
        try
        {
            if (allRowsShared)
            {
                // Row r of step i: its own query position, the step's segments (its tail up to
                // the step's last new key: the causal mask keeps each row to its own past).
                var lists = new IReadOnlyList<KvSegment>[rows];
                var positions = new int[rows];
                for (int i = 0; i < steps.Count; i++)
                {
                    var segments = Segments(steps[i].Cache, counts[i]);
                    for (int r = 0; r < counts[i]; r++)
                    {
                        lists[firstRow[i] + r] = segments;
                        positions[firstRow[i] + r] = starts[i] + r;
                    }
                }

                plans.Add((0, rows, attention.PlanBatch(lists, 1, positions)));
            }
            else if (decodeSteps.Count > 0)
            {
                // One launch for every one-token step: each sequence is cut into chunks as when alone.
                var lists = decodeSteps.Select(i => (IReadOnlyList<KvSegment>)Segments(steps[i].Cache, 1)).ToList();
                plans.Add((0, decodeSteps.Count, attention.PlanBatch(lists, 1, [.. decodeSteps.Select(i => starts[i])])));
            }

            for (int i = 0; i < steps.Count && !allRowsShared; i++)
            {
                if (!decodeSteps.Contains(i))
                {
                    plans.Add((firstRow[i], counts[i], attention.Plan(Segments(steps[i].Cache, counts[i]), counts[i], starts[i])));
                }
            }

            // Each cache's addresses read once for the call: per layer, one launch appends every row.
            var targets = new AppendTarget[steps.Count];
            for (int i = 0; i < steps.Count; i++)
            {
                targets[i] = DecoderKernels.Target(steps[i].Cache, counts[i]);
            }

            var appendRows = DecoderKernels.AppendRowTable(targets, firstRow, counts, starts, Info.Device);

            var normed = empty([padded, _shape.Hidden], Info.DType, Info.Device);
            var attended = zeros([padded, heads * headDim], Info.DType, Info.Device); // padding rows stay zero
            var gated = empty([padded, _shape.Intermediate], Info.DType, Info.Device);
            Tensor? delta = null;
            for (int layerIndex = 0; layerIndex < _layers.Length; layerIndex++)
            {
                var layer = _layers[layerIndex];
                kernels.RmsNorm(x, delta, layer.InputNorm, normed, _shape.RmsNormEps);
                delta?.Dispose();
                using (var qkv = TiledLinear(normed, layer.Qkv, tile))
                using (var qkvHeads = qkv.view(padded, heads + 2 * kvHeads, headDim))
                {
                    kernels.RequireRows(qkvHeads);
                    kernels.RotateAppendRows(CudaKernels.DataPointer(qkvHeads), appendRows, heads, kvHeads, layerIndex);

                    foreach (var (row, count, plan) in plans)
                    {
                        using var queries = qkvHeads.narrow(0, row, count);
                        using var output = attended.narrow(0, row, count);
                        plan.Attend(queries, layerIndex, output);
                    }
                }

                using (var attentionOut = TiledLinear(attended, layer.Output, tile))
                {
                    kernels.RmsNorm(x, attentionOut, layer.PostAttentionNorm, normed, _shape.RmsNormEps);
                }

                using (var gateUp = TiledLinear(normed, layer.GateUp, tile))
                {
                    kernels.SiluMul(gateUp, gated);
                }

                delta = TiledLinear(gated, layer.Down, tile);
            }

            x.add_(delta!);
            delta!.Dispose();
        }
        finally
        {
            foreach (var (_, _, plan) in plans)
            {
                plan.Dispose();
            }
        }

        foreach (var step in steps)
        {
            step.Cache.Advance(step.Tokens.Length);
        }

        if (kept == 0)
        {
            return null;
        }

        // Kept rows in the steps' order, padded to whole tiles for the head as well.
        var keptRows = new long[PaddedRows(kept, tile)];
        int k = 0;
        for (int i = 0; i < steps.Count; i++)
        {
            for (int r = counts[i] - steps[i].LogitsToKeep; r < counts[i]; r++)
            {
                keptRows[k++] = firstRow[i] + r;
            }
        }

        for (; k < keptRows.Length; k++)
        {
            keptRows[k] = rows < padded ? rows : 0; // a padding row (or any row: dropped below)
        }

        var last = x.index_select(0, tensor(keptRows, ScalarType.Int64, Info.Device));
        var normedLast = empty_like(last);
        kernels.RmsNorm(last, null, _finalNorm, normedLast, _shape.RmsNormEps); // one row at a time, whatever the others
        var logits = TiledLinear(normedLast, _lmHead, tile).narrow(0, 0, kept);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
