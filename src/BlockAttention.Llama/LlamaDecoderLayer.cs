using BlockAttention.Attention;
using BlockAttention.Attention.Cuda;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace BlockAttention.Llama;

/// <summary>
/// One Llama decoder layer: pre-norm attention with RoPE and grouped KV heads, then a pre-norm
/// SiLU-gated MLP, each added to the residual stream. The q/k/v and gate/up projections are fused
/// into one matrix each at load time: two matrix products instead of five.
/// </summary>
internal sealed class LlamaDecoderLayer : IDisposable
{
    private readonly LlamaShape _shape;

    public LlamaDecoderLayer(LlamaShape shape, Tensor inputNorm, Tensor qkv, Tensor output, Tensor postAttentionNorm, Tensor gateUp, Tensor down)
    {
        _shape = shape;
        InputNorm = inputNorm;
        Qkv = qkv;
        Output = output;
        PostAttentionNorm = postAttentionNorm;
        GateUp = gateUp;
        Down = down;
    }

    public Tensor InputNorm { get; }

    /// <summary><c>[(heads + 2 kvHeads) headDim, hidden]</c>: q_proj, k_proj and v_proj stacked.</summary>
    public Tensor Qkv { get; }

    public Tensor Output { get; }

    public Tensor PostAttentionNorm { get; }

    /// <summary><c>[2 intermediate, hidden]</c>: gate_proj and up_proj stacked.</summary>
    public Tensor GateUp { get; }

    public Tensor Down { get; }

    /// <summary>Runs the layer on <paramref name="x"/> <c>[n, hidden]</c> and returns the new residual stream.</summary>
    public Tensor Forward(Tensor x, int layerIndex, KvCache cache, RotaryAngles angles, AttentionPlan? plan, SegmentPlan? segments = null)
    {
        using var scope = NewDisposeScope();
        var normed = RmsNorm.Apply(x, InputNorm, _shape.RmsNormEps);
        var attention = segments is null
            ? Attention(normed, layerIndex, cache, angles, plan!)
            : SegmentAttention(normed, layerIndex, cache, angles, segments);
        var h = x.add(attention);
        var mlp = Mlp(RmsNorm.Apply(h, PostAttentionNorm, _shape.RmsNormEps));
        return h.add_(mlp).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs the layer on the rows of several sequences, <paramref name="x"/> <c>[rows, hidden]</c>:
    /// the weight products over all rows at once (<see cref="RowTiles"/>, so that no row depends on
    /// the others), attention per sequence against its own cache (a decoding sequence's through
    /// <see cref="DecodeAttention"/> where it runs).
    /// </summary>
    public Tensor ForwardBatch(Tensor x, int layerIndex, RotaryAngles angles, IReadOnlyList<BatchPart> parts)
    {
        using var scope = NewDisposeScope();
        long n = x.shape[0];
        int heads = _shape.Heads, kvHeads = _shape.KvHeads;
        var normed = RmsNorm.Apply(x, InputNorm, _shape.RmsNormEps);
        var qkv = RowTiles.Linear(normed, Qkv).view(n, heads + 2 * kvHeads, _shape.HeadDim);
        // Every row's queries and keys rotated at once, each row by its own position (elementwise: the same bits as alone).
        var queriesAndKeys = angles.Apply(qkv.narrow(1, 0, heads + kvHeads));
        var attended = empty([n, heads * _shape.HeadDim], qkv.dtype, qkv.device);
        foreach (var part in parts)
        {
            using var partScope = NewDisposeScope();
            var rotated = queriesAndKeys.narrow(0, part.Row, part.Count);
            var k = rotated.narrow(1, heads, kvHeads).transpose(0, 1);
            var v = qkv.narrow(0, part.Row, part.Count).narrow(1, heads + kvHeads, kvHeads).transpose(0, 1);
            var (keys, values) = part.Cache.Append(layerIndex, k, v);
            var queries = rotated.narrow(1, 0, heads);
            if (part.Count == 1 && part.Cache.Prefix is null && DecodeAttention.CanRun(queries[0], keys, values))
            {
                // A decoding sequence (most of a batch): its attention read straight from its cache.
                DecodeAttention.Attend(queries[0], keys, values, attended[part.Row]);
                continue;
            }

            var output = part.Plan.Attend(queries, keys, values);
            attended.narrow(0, part.Row, part.Count).copy_(output);
        }

        var h = x.add(RowTiles.Linear(attended, Output));
        var normedH = RmsNorm.Apply(h, PostAttentionNorm, _shape.RmsNormEps);
        long intermediate = Down.shape[1];
        var gateUp = RowTiles.Linear(normedH, GateUp);
        var gated = F.silu(gateUp.narrow(1, 0, intermediate)).mul_(gateUp.narrow(1, intermediate, intermediate));
        return h.add_(RowTiles.Linear(gated, Down)).MoveToOuterDisposeScope();
    }

    private Tensor Attention(Tensor x, int layerIndex, KvCache cache, RotaryAngles angles, AttentionPlan plan)
    {
        long n = x.shape[0];
        int heads = _shape.Heads, kvHeads = _shape.KvHeads;
        var qkv = F.linear(x, Qkv).view(n, heads + 2 * kvHeads, _shape.HeadDim);
        // Queries and keys take the same rotation: rotate them together, one set of kernels.
        var queriesAndKeys = angles.Apply(qkv.narrow(1, 0, heads + kvHeads));
        var k = queriesAndKeys.narrow(1, heads, kvHeads).transpose(0, 1);
        var v = qkv.narrow(1, heads + kvHeads, kvHeads).transpose(0, 1);
        var (keys, values) = cache.Append(layerIndex, k, v);
        var attended = plan.Attend(queriesAndKeys.narrow(1, 0, heads), keys, values); // [n, heads * headDim]
        return F.linear(attended, Output);
    }

    /// <summary>
    /// Attention over cached blocks in place: the new tokens' keys are rotated for their positions
    /// and appended to the request's own cache; the queries stay unrotated, since the kernel
    /// rotates them per segment.
    /// </summary>
    private Tensor SegmentAttention(Tensor x, int layerIndex, KvCache cache, RotaryAngles angles, SegmentPlan segments)
    {
        long n = x.shape[0];
        int heads = _shape.Heads, kvHeads = _shape.KvHeads;
        var qkv = F.linear(x, Qkv).view(n, heads + 2 * kvHeads, _shape.HeadDim);
        var k = angles.Apply(qkv.narrow(1, heads, kvHeads)).transpose(0, 1);
        var v = qkv.narrow(1, heads + kvHeads, kvHeads).transpose(0, 1);
        var (keys, values) = cache.Append(layerIndex, k, v);
        keys.Dispose();
        values.Dispose();
        var attended = empty([n, heads * _shape.HeadDim], qkv.dtype, qkv.device);
        segments.Attend(qkv, layerIndex, attended);
        return F.linear(attended, Output);
    }

    private Tensor Mlp(Tensor x)
    {
        long intermediate = Down.shape[1];
        var gateUp = F.linear(x, GateUp);
        var gated = F.silu(gateUp.narrow(1, 0, intermediate)).mul_(gateUp.narrow(1, intermediate, intermediate));
        return F.linear(gated, Down);
    }

    public void Dispose()
    {
        InputNorm.Dispose();
        Qkv.Dispose();
        Output.Dispose();
        PostAttentionNorm.Dispose();
        GateUp.Dispose();
        Down.Dispose();
    }
}

/// <summary>One sequence's rows in a batched layer call: where they lie, its cache and its attention plan.</summary>
internal sealed record BatchPart(int Row, int Count, KvCache Cache, AttentionPlan Plan);
