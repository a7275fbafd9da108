using BlockAttention.Caching;
using static TorchSharp.torch;

namespace BlockAttention.Attention;

/// <summary>
/// Re-encodes positions and assembles a prompt's cached blocks into one KV cache: each block's
/// keys are rotated by the block's offset (in float32, with the model's own frequencies) and
/// written, with its values unchanged, at that offset for every layer at once.
/// </summary>
/// <remarks>
/// <para>
/// The rotation is written straight into the cache one half of the head at a time
/// (<c>out1 = x1 cos - x2 sin</c>, <c>out2 = x2 cos + x1 sin</c>), with one angle per block: no
/// swapped copy and no unrotated copy of the keys is made, and the angle is a single
/// <c>[headDim/2]</c> vector that stays in cache. The angles of all blocks are gathered from the
/// model's cos/sin table in one operation.
/// </para>
/// <para>
/// Measured on an H200 at 32K tokens (109 blocks, Llama-3.1-8B shape, float32 arithmetic):
/// 17.4 ms for this form, against 20.0 ms swapping halves with <c>flip</c>, 21.4 ms copying
/// every block and then rotating the region with per-position angles, and 23.0 ms with
/// per-position angles and <c>flip</c>. Copying keys and values alone takes 5.3 ms.
/// </para>
/// </remarks>
public static class BlockAssembler
{
    /// <summary>Writes <paramref name="blocks"/> in order from position <c>cache.Length</c> and advances the cache past them.</summary>
    public static void Assemble(IReadOnlyList<KvBlock> blocks, RotaryEmbedding rotary, KvCache cache)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(rotary);
        ArgumentNullException.ThrowIfNull(cache);
        if (blocks.Count == 0)
        {
            return;
        }

        // Offsets in 64 bits, and checked against the cache before anything is written.
        var offsets = new long[blocks.Count];
        long position = cache.Length;
        for (int b = 0; b < blocks.Count; position += blocks[b].Length, b++)
        {
            offsets[b] = position;
        }

        if (position > cache.Capacity)
        {
            throw new InvalidOperationException($"the blocks end at position {position}, past the cache capacity {cache.Capacity} ({cache.Length} already used)");
        }

        using var inference = inference_mode();
        using var scope = NewDisposeScope();

        // One gather for every block's angle: [blocks, headDim] cos and signed sin.
        var index = tensor(offsets, ScalarType.Int64, cache.Device);
        using var angles = rotary.AnglesAt(index, offsets[^1], cache.Device);
        long half = rotary.HeadDim / 2;
        var cos = angles.Cos.narrow(1, 0, half);             // both halves of cos are equal
        var sin = angles.SignedSin.narrow(1, half, half);    // the signed sin is [-sin, +sin]
        for (int b = 0; b < blocks.Count; b++)
        {
            var block = blocks[b];
            var (keySlot, valueSlot) = cache.Slot((int)offsets[b], block.Length);
            valueSlot.copy_(block.Values);
            if (offsets[b] == 0)
            {
                keySlot.copy_(block.Keys); // rotating by 0 is the identity: copy bit for bit
            }
            else
            {
                RotateInto(keySlot, block.Keys, cos[b], sin[b]);
            }
        }

        cache.Advance((int)(position - cache.Length));
    }

    /// <summary>Writes <paramref name="keys"/> <c>[..., headDim]</c> rotated by one angle (<paramref name="cos"/>, <paramref name="sin"/>: <c>[headDim/2]</c>) into <paramref name="destination"/>.</summary>
    private static void RotateInto(Tensor destination, Tensor keys, Tensor cos, Tensor sin)
    {
        int last = (int)keys.ndim - 1;
        long half = keys.shape[last] / 2;
        var x1 = keys.narrow(last, 0, half);
        var x2 = keys.narrow(last, half, half);
        // x * cos promotes bf16/f16 keys to float32: the arithmetic is float32, rounded once by copy_.
        destination.narrow(last, 0, half).copy_(x1.mul(cos).addcmul_(x2, sin, Runtime.Scalars.MinusOne));
        destination.narrow(last, half, half).copy_(x2.mul(cos).addcmul_(x1, sin, Runtime.Scalars.One));
    }
}
