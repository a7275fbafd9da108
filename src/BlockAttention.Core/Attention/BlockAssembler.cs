using BlockAttention.Caching;
using static TorchSharp.torch;

namespace BlockAttention.Attention;

/// <summary>
/// Re-encodes positions and assembles a prompt's cached blocks into one KV cache: each block's
/// keys are rotated by the block's offset (in float32, with the model's own frequencies) and
/// written, with its values unchanged, at that offset for every layer at once.
/// </summary>
public static class BlockAssembler
{
    /// <summary>Writes <paramref name="blocks"/> in order from position <c>cache.Length</c> and advances the cache past them.</summary>
    public static void Assemble(IReadOnlyList<KvBlock> blocks, RotaryEmbedding rotary, KvCache cache)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(rotary);
        ArgumentNullException.ThrowIfNull(cache);
        using var inference = inference_mode();
        int offset = cache.Length;
        foreach (var block in blocks)
        {
            using var scope = NewDisposeScope();
            var (keySlot, valueSlot) = cache.Slot(offset, block.Length);
            // Rotating by 0 is the identity: copy the block at the start as it is, bit for bit.
            keySlot.copy_(offset == 0 ? block.Keys : rotary.RotateBy(block.Keys, offset));
            valueSlot.copy_(block.Values);
            offset += block.Length;
        }

        cache.Advance(offset - cache.Length);
    }
}
