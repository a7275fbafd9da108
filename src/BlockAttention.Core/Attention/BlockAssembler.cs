using BlockAttention.Caching;
using static TorchSharp.torch;

namespace BlockAttention.Attention;

/// <summary>
/// Re-encodes positions and assembles a prompt's cached blocks into one KV cache: every block's
/// keys and values are copied to the block's offset for all layers at once, then the keys are
/// rotated in place by their block's offset (in float32, with the model's own frequencies).
/// Values are never changed.
/// </summary>
/// <remarks>
/// <para>
/// The rotation runs over the whole assembled region a few layers at a time, with a
/// per-position angle (each position takes its block's offset) gathered from the model's cos/sin
/// table, one half of the head at a time (<c>out1 = x1 cos - x2 sin</c>,
/// <c>out2 = x2 cos + x1 sin</c>) so that no swapped copy is made.
/// </para>
/// <para>
/// Why this shape, measured on an H200 at 32K tokens (109 blocks, Llama-3.1-8B shape): the GPU
/// work of rotating block by block is about the same (17 to 20 ms), but enqueueing a dozen
/// operations per block cost the host about as much again; here the host enqueues two copies
/// per block and a few operations per group of layers, and stays ahead of the GPU.
/// </para>
/// </remarks>
public static class BlockAssembler
{
    /// <summary>Upper bound on the float32 scratch memory of one rotation step.</summary>
    private const long ScratchBytes = 512L << 20;

    /// <summary>Writes <paramref name="blocks"/> in order from position <c>cache.Length</c> and advances the cache past them.</summary>
    public static void Assemble(IReadOnlyList<KvBlock> blocks, RotaryEmbedding rotary, KvCache cache)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(rotary);
        ArgumentNullException.ThrowIfNull(cache);
        int start = cache.Length;
        int total = blocks.Sum(b => b.Length);
        if (total == 0)
        {
            return;
        }

        using var inference = inference_mode();
        using var scope = NewDisposeScope();
        var offsets = new long[total];
        int position = start;
        foreach (var block in blocks)
        {
            var (keySlot, valueSlot) = cache.Slot(position, block.Length);
            keySlot.copy_(block.Keys);
            valueSlot.copy_(block.Values);
            Array.Fill(offsets, position, position - start, block.Length);
            position += block.Length;
        }

        // A block at offset 0 needs no rotation (by 0 it is the identity); start after it.
        int unmoved = start == 0 ? blocks[0].Length : 0;
        if (unmoved < total)
        {
            var index = tensor(offsets.AsSpan(unmoved).ToArray(), ScalarType.Int64, cache.Device);
            using var angles = rotary.AnglesAt(index, position - 1, cache.Device);
            var (keys, _) = cache.Slot(start + unmoved, total - unmoved);
            RotateInPlace(keys, angles);
        }

        cache.Advance(total);
    }

    /// <summary>Rotates keys <c>[layers, kvHeads, n, headDim]</c> in place by per-position angles <c>[n, headDim]</c>.</summary>
    private static void RotateInPlace(Tensor keys, RotaryAngles angles)
    {
        long layers = keys.shape[0], half = keys.shape[3] / 2;
        // Both halves of cos are equal; the signed sin is [-sin, +sin]: take the halves that are +.
        var cos = angles.Cos.narrow(1, 0, half);
        var sin = angles.SignedSin.narrow(1, half, half);
        long perLayer = keys.shape[1] * keys.shape[2] * keys.shape[3] * sizeof(float);
        long chunk = Math.Clamp(ScratchBytes / Math.Max(1, perLayer), 1, layers);
        for (long first = 0; first < layers; first += chunk)
        {
            using var scope = NewDisposeScope();
            var part = keys.narrow(0, first, Math.Min(chunk, layers - first));
            var x1 = part.narrow(3, 0, half);
            var x2 = part.narrow(3, half, half);
            // x * cos promotes bf16/f16 keys to float32: the arithmetic is float32, rounded once by copy_.
            var rotated1 = x1.mul(cos).addcmul_(x2, sin, -1);
            var rotated2 = x2.mul(cos).addcmul_(x1, sin, 1);
            x1.copy_(rotated1);
            x2.copy_(rotated2);
        }
    }
}
