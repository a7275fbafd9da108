using System.IO.Hashing;
using System.Runtime.InteropServices;

namespace BlockAttention.Caching;

/// <summary>
/// Identifies the encoded states of one block: the model that encoded it (its fingerprint covers
/// config, weights, dtype and device kind) and the block's exact token ids (a 128-bit XxHash128
/// of them, plus their count).
/// </summary>
/// <remarks>
/// The hash makes collisions unlikely, not impossible, so a store never trusts it alone: every
/// <see cref="KvBlock"/> keeps its token ids, and a store returns a block
/// only when they are equal to the ids asked for.
/// </remarks>
/// <param name="ModelFingerprint">The fingerprint of the model that encoded the block.</param>
/// <param name="TokenHash">XxHash128 of the token ids (little-endian int32s), as hex.</param>
/// <param name="TokenCount">Number of tokens in the block.</param>
public readonly record struct BlockKey(string ModelFingerprint, string TokenHash, int TokenCount)
{
    /// <summary>The key of <paramref name="tokens"/> encoded by the model with <paramref name="modelFingerprint"/>.</summary>
    public static BlockKey For(string modelFingerprint, ReadOnlySpan<int> tokens)
    {
        ArgumentException.ThrowIfNullOrEmpty(modelFingerprint);
        var hash = XxHash128.Hash(MemoryMarshal.AsBytes(tokens));
        return new BlockKey(modelFingerprint, Convert.ToHexStringLower(hash), tokens.Length);
    }

    /// <inheritdoc />
    public override string ToString() => $"{ModelFingerprint}/{TokenHash}/{TokenCount}";
}
