using System.Diagnostics;
using BlockAttention.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

// Attention probe: for a Llama-3.1-8B-shaped layer (8 KV heads, 4 query heads each, head_dim 128,
// bf16), times each way of computing the final block's attention over a cached prefix, and each
// way of re-rotating and assembling cached blocks, with device synchronisation. Prints medians.
TorchSharpNativeLibrary.EnsureRegistered();
bool cuda = cuda_is_available();
var device = cuda ? CUDA : CPU;
var dtype = cuda ? ScalarType.BFloat16 : ScalarType.Float32;
int[] lengths = cuda ? [2048, 8192, 32768] : [512, 2048];
const int KvHeads = 8, Group = 4, HeadDim = 128, Final = 50, Layers = 32, Passage = 300;
Console.WriteLine($"device {(cuda ? "cuda" : "cpu")} dtype {dtype}");
using var inference = inference_mode();

double Time(Action action, int repeats = 20)
{
    action();
    Sync();
    var times = new List<double>();
    for (int i = 0; i < repeats; i++)
    {
        var clock = Stopwatch.StartNew();
        action();
        Sync();
        times.Add(clock.Elapsed.TotalMilliseconds);
    }

    times.Sort();
    return times[times.Count / 2];
}

double Enqueue(Action action, int repeats = 10)
{
    action();
    Sync();
    var times = new List<double>();
    for (int i = 0; i < repeats; i++)
    {
        var clock = Stopwatch.StartNew();
        action();
        times.Add(clock.Elapsed.TotalMilliseconds);
        Sync();
    }

    times.Sort();
    return times[times.Count / 2];
}

void Sync()
{
    if (cuda)
    {
        torch.cuda.synchronize();
    }
}

// Host cost of one small op through TorchSharp.
using (var small = ones(16, device: device))
{
    double perOp = Enqueue(() =>
    {
        for (int i = 0; i < 1000; i++)
        {
            using var r = small.add(1);
        }
    }) / 1000 * 1000;
    Console.WriteLine($"host cost of a small op: {perOp:F1} us");
}

foreach (int length in lengths)
{
    int cached = length - Final;
    using var scope = NewDisposeScope();
    var q = randn(1, KvHeads, Group * Final, HeadDim, dtype: dtype, device: device);
    var k = randn(1, KvHeads, length, HeadDim, dtype: dtype, device: device);
    var v = randn(1, KvHeads, length, HeadDim, dtype: dtype, device: device);
    var columns = arange(length, device: device).unsqueeze(0);
    var limits = arange(Final, device: device).repeat(Group).add_(cached).unsqueeze(1);
    var boolMask = columns.le(limits);
    var additive = zeros(Group * Final, length, dtype: dtype, device: device).masked_fill_(boolMask.logical_not(), float.NegativeInfinity);
    var qExpanded = q.view(1, KvHeads, Group, Final, HeadDim).reshape(1, KvHeads * Group, Final, HeadDim);
    var maskExpanded = boolMask.narrow(0, 0, Final);
    double scale = 1 / Math.Sqrt(HeadDim);

    var rows = new List<(string Name, double Ms)>
    {
        ("folded, bool mask", Time(() => { using var o = F.scaled_dot_product_attention(q, k, v, boolMask); })),
        ("folded, additive mask", Time(() => { using var o = F.scaled_dot_product_attention(q, k, v, additive); })),
        ("folded, no mask (inexact bound)", Time(() => { using var o = F.scaled_dot_product_attention(q, k, v); })),
        ("expanded K/V, bool mask", Time(() =>
        {
            using var s = NewDisposeScope();
            var ke = k.repeat_interleave(Group, 1);
            var ve = v.repeat_interleave(Group, 1);
            F.scaled_dot_product_attention(qExpanded, ke, ve, maskExpanded);
        })),
        ("baddbmm + softmax(bf16) + bmm", Time(() =>
        {
            using var s = NewDisposeScope();
            var q3 = q.view(KvHeads, Group * Final, HeadDim);
            var scores = q3.baddbmm(k.view(KvHeads, length, HeadDim).transpose(1, 2), additive, 1, (float)scale); // TorchSharp 0.107 binds baddbmm as (batch1).baddbmm(batch2, input)
            scores.softmax(-1).bmm(v.view(KvHeads, length, HeadDim));
        })),
        ("baddbmm + softmax(f32) + bmm", Time(() =>
        {
            using var s = NewDisposeScope();
            var q3 = q.view(KvHeads, Group * Final, HeadDim);
            var scores = q3.baddbmm(k.view(KvHeads, length, HeadDim).transpose(1, 2), additive, 1, (float)scale); // TorchSharp 0.107 binds baddbmm as (batch1).baddbmm(batch2, input)
            scores.softmax(-1, ScalarType.Float32).to(dtype).bmm(v.view(KvHeads, length, HeadDim));
        })),
        ("matmuls, float32 softmax", Time(() =>
        {
            using var s = NewDisposeScope();
            var scores = q.matmul(k.transpose(2, 3)).to(ScalarType.Float32).mul_(scale).masked_fill_(boolMask.logical_not(), float.NegativeInfinity);
            scores.softmax(-1).to(dtype).matmul(v);
        })),
    };
    foreach (var (name, ms) in rows)
    {
        Console.WriteLine($"attention L={length,6} {name,-34} {ms,8:F3} ms/layer  {ms * Layers,8:F2} ms/32 layers");
    }

    // Re-encoding: blocks of ~300 tokens, [layers, kv, n, d] each, into one cache.
    int blockCount = Math.Max(1, cached / Passage);
    var blocks = Enumerable.Range(0, blockCount).Select(_ => randn(Layers, KvHeads, Passage, HeadDim, dtype: dtype, device: device)).ToList();
    var cacheK = empty(Layers, KvHeads, length, HeadDim, dtype: dtype, device: device);
    var cacheV = empty(Layers, KvHeads, length, HeadDim, dtype: dtype, device: device);
    var cosTable = randn(length, HeadDim, device: device);
    var sinTable = randn(length, HeadDim, device: device);

    void PerBlockFloat32()
    {
        for (int b = 0; b < blocks.Count; b++)
        {
            using var s = NewDisposeScope();
            int offset = b * Passage;
            var cos = cosTable.narrow(0, offset, 1);
            var sin = sinTable.narrow(0, offset, 1);
            var x = blocks[b];
            var swapped = x.unflatten(3, [2, HeadDim / 2]).flip(3).flatten(3);
            var rotated = x.mul(cos).addcmul_(swapped, sin, 1);
            cacheK.narrow(2, offset, Passage).copy_(rotated);
            cacheV.narrow(2, offset, Passage).copy_(x);
        }
    }

    void CopyThenRotateOnce()
    {
        using var s = NewDisposeScope();
        var offsets = new long[blockCount * Passage];
        for (int b = 0; b < blockCount; b++)
        {
            cacheK.narrow(2, b * Passage, Passage).copy_(blocks[b]);
            cacheV.narrow(2, b * Passage, Passage).copy_(blocks[b]);
            Array.Fill(offsets, b * Passage, b * Passage, Passage);
        }

        var index = tensor(offsets, device: device);
        var cos = cosTable.index_select(0, index);
        var sin = sinTable.index_select(0, index);
        var region = cacheK.narrow(2, 0, blockCount * Passage);
        var swapped = region.unflatten(3, [2, HeadDim / 2]).flip(3).flatten(3);
        region.copy_(region.mul(cos).addcmul_(swapped, sin, 1));
    }

    void PerBlockLowPrecision()
    {
        for (int b = 0; b < blocks.Count; b++)
        {
            using var s = NewDisposeScope();
            int offset = b * Passage;
            var cos = cosTable.narrow(0, offset, 1).to(dtype);
            var sin = sinTable.narrow(0, offset, 1).to(dtype);
            var x = blocks[b];
            var swapped = x.unflatten(3, [2, HeadDim / 2]).flip(3).flatten(3);
            cacheK.narrow(2, offset, Passage).copy_(x.mul(cos).addcmul_(swapped, sin, 1));
            cacheV.narrow(2, offset, Passage).copy_(x);
        }
    }

    void PerBlockHalves()
    {
        const int Half = HeadDim / 2;
        for (int b = 0; b < blocks.Count; b++)
        {
            using var s = NewDisposeScope();
            int offset = b * Passage;
            var cos = cosTable.narrow(0, offset, 1).narrow(1, 0, Half);
            var sin = sinTable.narrow(0, offset, 1).narrow(1, Half, Half);
            var x = blocks[b];
            var x1 = x.narrow(3, 0, Half);
            var x2 = x.narrow(3, Half, Half);
            var slot = cacheK.narrow(2, offset, Passage);
            slot.narrow(3, 0, Half).copy_(x1.mul(cos).addcmul_(x2, sin, -1));
            slot.narrow(3, Half, Half).copy_(x2.mul(cos).addcmul_(x1, sin, 1));
            cacheV.narrow(2, offset, Passage).copy_(x);
        }
    }

    void PerBlockCatSwap()
    {
        const int Half = HeadDim / 2;
        for (int b = 0; b < blocks.Count; b++)
        {
            using var s = NewDisposeScope();
            int offset = b * Passage;
            var cos = cosTable.narrow(0, offset, 1);
            var sin = sinTable.narrow(0, offset, 1);
            var x = blocks[b];
            var swapped = cat([x.narrow(3, Half, Half), x.narrow(3, 0, Half)], 3);
            cacheK.narrow(2, offset, Passage).copy_(x.mul(cos).addcmul_(swapped, sin, 1));
            cacheV.narrow(2, offset, Passage).copy_(x);
        }
    }

    void CopyOnly()
    {
        for (int b = 0; b < blocks.Count; b++)
        {
            using var s = NewDisposeScope();
            cacheK.narrow(2, b * Passage, Passage).copy_(blocks[b]);
            cacheV.narrow(2, b * Passage, Passage).copy_(blocks[b]);
        }
    }

    Console.WriteLine($"re-encode L={length,6} {blockCount} blocks: halves {Time(PerBlockHalves, 5):F2} ms; cat swap {Time(PerBlockCatSwap, 5):F2} ms; copies only {Time(CopyOnly, 5):F2} ms");
    Console.WriteLine($"re-encode L={length,6} {blockCount} blocks: per block float32 {Time(PerBlockFloat32, 5),8:F2} ms (enqueue {Enqueue(PerBlockFloat32, 3):F2}); " +
        $"copy then rotate once {Time(CopyThenRotateOnce, 5):F2} ms; per block in {dtype} {Time(PerBlockLowPrecision, 5):F2} ms");
    blocks.ForEach(b => b.Dispose());
}
