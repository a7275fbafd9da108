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
/// The rotation runs once over the whole assembled region, a few layers at a time, with a
/// per-position angle (each position takes its block's offset) gathered from the model's cos/sin
/// table: a handful of large operations instead of a handful per block. On a GPU the cost of
/// launching operations, not moving bytes, is what a per-block loop would pay for.
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

        // A block at offset 0 needs no rotation; rotate from the first block that moved.
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
        long layers = keys.shape[0];
        long perLayer = keys.shape[1] * keys.shape[2] * keys.shape[3] * sizeof(float);
        long chunk = Math.Clamp(ScratchBytes / Math.Max(1, perLayer), 1, layers);
        for (long first = 0; first < layers; first += chunk)
        {
            using var scope = NewDisposeScope();
            var part = keys.narrow(0, first, Math.Min(chunk, layers - first));
            if (part.dtype == ScalarType.Float32)
            {
                // In place, no float32 copy needed: part = part * cos + swap_halves(part) * signedSin.
                var swapped = RotaryAngles.SwapHalves(part);
                part.mul_(angles.Cos).addcmul_(swapped, angles.SignedSin, 1);
            }
            else
            {
                // Lower-precision caches rotate through float32 and round once, on the way back.
                part.copy_(angles.Apply(part));
            }
        }
    }
}
