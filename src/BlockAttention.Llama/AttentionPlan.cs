using BlockAttention.Runtime;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BlockAttention.Llama;

/// <summary>
/// How the tokens of one forward call attend, decided once per call and shared by every layer:
/// which formulation to use, the mask it needs, and how many query rows attend at once.
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp's SDPA has no <c>enable_gqa</c>, and its <c>is_casual</c> aligns the causal diagonal
/// top-left, which is wrong once there is a cached prefix. So:
/// <list type="bullet">
/// <item>no prefix: causal SDPA, the KV heads as the batch and K/V broadcast over their query
/// heads by a stride-0 view (no copy);</item>
/// <item>a prefix: the query heads of one KV head are folded into the length axis
/// (<c>[kvHeads, group*n, d]</c>), so K/V are read once, with an additive mask that lets row
/// (g, i) see positions up to <c>prefix + i</c> (a single token needs none); computed by SDPA
/// or, where <see cref="AttentionImplementation.Matmul"/> is chosen, by three batched matrix
/// operations;</item>
/// <item>a caller's mask (the one-pass block formulation): as the no-prefix case, with that mask.</item>
/// </list>
/// </para>
/// <para>
/// Memory: a mask (or the matmul form's scores) covers query rows times key positions, so a long
/// final block on a long prefix would need memory in the square of the prompt. Query rows are
/// therefore processed in chunks whose scores stay within a budget of elements; each chunk
/// attends to the keys up to its last row. This is exact (no row sees a later position) and a
/// prompt small enough for one chunk runs exactly as a single pass. The prefix mask is built once
/// per call for one chunk's rows, with its causal edge at the right end, and every chunk reads a
/// view of it: row r of a chunk of c rows seeing L keys sees up to <c>L - c + r</c>.
/// </para>
/// </remarks>
internal sealed class AttentionPlan : IDisposable
{
    private readonly LlamaShape _shape;
    private readonly Tensor? _mask;
    private readonly bool _foldGroups;
    private readonly bool _causal;
    private readonly bool _ownsMask;
    private readonly bool _matmul;
    private readonly long _prefix;
    private readonly long _rowsPerChunk;

    private AttentionPlan(LlamaShape shape, Tensor? mask, bool foldGroups, bool causal, long prefix, long rowsPerChunk, bool matmul = false, bool ownsMask = true)
    {
        _shape = shape;
        _mask = mask;
        _foldGroups = foldGroups;
        _causal = causal;
        _matmul = matmul && foldGroups; // the matmul form exists for the folded (prefix) case only
        _ownsMask = ownsMask;
        _prefix = prefix;
        _rowsPerChunk = rowsPerChunk;
    }

    /// <summary>Elements of the largest mask this plan holds (the caller's, or the prefix mask of one chunk).</summary>
    public long MaskElements => _mask?.NumberOfElements ?? 0;

    /// <summary>Query rows attending at once (the whole call when it fits the budget).</summary>
    public long RowsPerChunk => _rowsPerChunk;

    /// <param name="shape">The model's dimensions.</param>
    /// <param name="prefix">Positions already in the cache.</param>
    /// <param name="count">Tokens in this call.</param>
    /// <param name="callerMask">A bool mask <c>[count, prefix + count]</c>, or null.</param>
    /// <param name="dtype">The model's dtype (of the additive mask).</param>
    /// <param name="device">The model's device.</param>
    /// <param name="matmul">Use the matmul form for the prefix case.</param>
    /// <param name="scoreBudget">The most attention scores (heads x query rows x keys) one chunk may cover.</param>
    public static AttentionPlan Create(LlamaShape shape, long prefix, long count, Tensor? callerMask, ScalarType dtype, Device device, bool matmul, long scoreBudget)
    {
        long keys = prefix + count;
        long rows = Math.Clamp(scoreBudget / Math.Max(1, (long)shape.Heads * keys), 1, count);
        if (callerMask is not null)
        {
            if (callerMask.dtype != ScalarType.Bool || callerMask.ndim != 2 || callerMask.shape[0] != count || callerMask.shape[1] != keys)
            {
                throw new ArgumentException($"the attention mask must be bool [{count}, {keys}]; got {callerMask.dtype} [{string.Join(", ", callerMask.shape)}]");
            }

            bool sameDevice = callerMask.device_type == device.type && callerMask.device_index == device.index;
            return new AttentionPlan(shape, sameDevice ? callerMask : callerMask.to(device), foldGroups: false, causal: false, prefix, rows, ownsMask: !sameDevice);
        }

        if (prefix == 0)
        {
            return new AttentionPlan(shape, null, foldGroups: false, causal: count > 1, prefix, count);
        }

        if (count == 1)
        {
            return new AttentionPlan(shape, null, foldGroups: true, causal: false, prefix, count, matmul);
        }

        // An additive mask (0 or -inf, in the model's dtype): on the CPU, SDPA with a bool mask
        // was measured 1.7x slower than with an additive one (53 against 32 ms a layer at 2K).
        // [group * rows, keys], row (g, r) seeing up to keys - rows + r: with one chunk
        // (rows == count) that is prefix + r, the whole mask of the call.
        using var scope = NewDisposeScope();
        var columns = Scalars.Arange(0, keys, device: device).unsqueeze(0);
        using var firstLimit = Scalars.Of((long)keys - rows); // disposed after use, so alive during it (see Scalars)
        var rowLimits = Scalars.Arange(0, rows, device: device).repeat(shape.Group).add_(firstLimit).unsqueeze(1);
        var mask = zeros([shape.Group * rows, keys], dtype, device)
            .masked_fill_(columns.gt(rowLimits), Scalars.NegativeInfinity).DetachFromDisposeScope();
        return new AttentionPlan(shape, mask, foldGroups: true, causal: false, prefix, rows, matmul);
    }

    /// <summary>Queries <c>[n, heads, d]</c>, cached keys/values <c>[kvHeads, S, d]</c>; returns <c>[n, heads * d]</c>.</summary>
    public Tensor Attend(Tensor queries, Tensor keys, Tensor values)
    {
        long n = queries.shape[0];
        if (_rowsPerChunk >= n)
        {
            return _foldGroups ? AttendFolded(queries, keys, values, _mask) : AttendGrouped(queries, keys, values, _mask);
        }

        using var scope = NewDisposeScope();
        var outputs = new List<Tensor>();
        for (long start = 0; start < n; start += _rowsPerChunk)
        {
            // Each chunk's temporaries are freed before the next: only the outputs accumulate.
            using var chunkScope = NewDisposeScope();
            long rows = Math.Min(_rowsPerChunk, n - start);
            var chunk = queries.narrow(0, start, rows);
            Tensor output;
            if (_foldGroups)
            {
                // A chunk's keys end at its last row; the prefix mask's view has its causal edge there.
                long visible = _prefix + start + rows;
                output = AttendFolded(chunk, keys.narrow(1, 0, visible), values.narrow(1, 0, visible), ChunkMask(rows, visible));
            }
            else
            {
                // The caller's mask may let a row see any position of the call: all keys, its rows.
                output = AttendGrouped(chunk, keys, values, _mask!.narrow(0, start, rows));
            }

            outputs.Add(output.MoveToOuterDisposeScope());
        }

        return cat(outputs, 0).MoveToOuterDisposeScope();
    }

    /// <summary>The prefix mask of a chunk of <paramref name="rows"/> query rows seeing <paramref name="visible"/> keys: <c>[group * rows, visible]</c>.</summary>
    private Tensor ChunkMask(long rows, long visible)
    {
        int group = _shape.Group;
        long keys = _mask!.shape[1];
        // Rows rows..end of each group's band and its last visible columns: a view, copied by the
        // reshape only for a shorter (last) chunk.
        return _mask.view(group, _rowsPerChunk, keys).narrow(1, _rowsPerChunk - rows, rows).narrow(2, keys - visible, visible).reshape(group * rows, visible);
    }

    /// <summary>The prefix case: the g query heads of a KV head become g*n rows, so K/V are read once.</summary>
    private Tensor AttendFolded(Tensor queries, Tensor keys, Tensor values, Tensor? mask)
    {
        int group = _shape.Group, kvHeads = _shape.KvHeads;
        long n = queries.shape[0], d = queries.shape[2];
        // [n, kv*g, d] -> [1, kv, g*n, d]: the g query heads of a KV head become g*n rows.
        var folded = queries.view(n, kvHeads, group, d).permute(1, 2, 0, 3).reshape(kvHeads, group * n, d);
        using var output = _matmul ? MatmulAttention(folded, keys, values, mask) : SdpaAttention(folded, keys, values, mask);
        return output.view(kvHeads, group, n, d).permute(2, 0, 1, 3).reshape(n, _shape.Heads * d);
    }

    /// <summary>No prefix, or the caller's mask: the KV heads as the batch, each one's query heads as the heads.</summary>
    private Tensor AttendGrouped(Tensor queries, Tensor keys, Tensor values, Tensor? mask)
    {
        int group = _shape.Group, kvHeads = _shape.KvHeads;
        long n = queries.shape[0], d = queries.shape[2];
        // GQA without copying K/V: the KV heads become the batch and each one's query heads the
        // heads, with K/V broadcast over them by a stride-0 view (transformers' repeat_kv copies).
        // 4-D also matters on the CPU: libtorch's fused kernels take only 4-D inputs, and the 3-D
        // fallback was measured 40x slower (20.7 s against 0.5 s at 9K tokens).
        using var q = queries.transpose(0, 1).view(kvHeads, group, n, d);
        using var k = keys.unsqueeze(1).expand(kvHeads, group, keys.shape[1], d);
        using var v = values.unsqueeze(1).expand(kvHeads, group, values.shape[1], d);
        using var result = F.scaled_dot_product_attention(q, k, v, mask, is_casual: _causal);
        // permute + reshape, not view: the CUDA kernels may return [kv, g, n, d] laid out as
        // [kv, n, g, d] (float32 on an H200 did), where merging kv and g is not a view.
        return result.permute(2, 0, 1, 3).reshape(n, _shape.Heads * d);
    }

    /// <summary>Folded queries <c>[kv, rows, d]</c> against keys/values <c>[kv, S, d]</c> with libtorch's SDPA (4-D: see below).</summary>
    private static Tensor SdpaAttention(Tensor folded, Tensor keys, Tensor values, Tensor? mask)
    {
        using var output = F.scaled_dot_product_attention(folded.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0), mask);
        return output.squeeze(0);
    }

    /// <summary>
    /// softmax(q kᵀ / √d + mask) v as three batched operations. The scores are in the model's
    /// dtype (as transformers' eager attention has them); softmax accumulates in float32.
    /// </summary>
    private static Tensor MatmulAttention(Tensor folded, Tensor keys, Tensor values, Tensor? mask)
    {
        using var scope = NewDisposeScope();
        float scale = 1f / MathF.Sqrt(folded.shape[2]);
        // Without a mask (one new token) beta 0 ignores the input; a [1, 1, 1] zero broadcasts.
        var bias = mask ?? zeros([1, 1, 1], folded.dtype, folded.device);
        var scores = Baddbmm(bias, folded, keys.transpose(1, 2), beta: mask is null ? 0 : 1, alpha: scale);
        return scores.softmax(-1).bmm(values).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>beta * input + alpha * (batch1 @ batch2)</c>. TorchSharp 0.107 binds
    /// <c>Tensor.baddbmm</c> with its operands rotated (<c>batch1.baddbmm(batch2, input)</c>
    /// computes this); a unit test pins the behaviour so an upstream fix is noticed.
    /// </summary>
    internal static Tensor Baddbmm(Tensor input, Tensor batch1, Tensor batch2, float beta, float alpha) =>
        batch1.baddbmm(batch2, input, beta, alpha);

    public void Dispose()
    {
        if (_ownsMask)
        {
            _mask?.Dispose();
        }
    }
}
