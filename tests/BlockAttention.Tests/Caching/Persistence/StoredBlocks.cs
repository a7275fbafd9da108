using BlockAttention.Caching;

namespace BlockAttention.Tests.Caching.Persistence;

/// <summary>Comparisons of blocks read back from a store with the blocks that were written.</summary>
internal static class StoredBlocks
{
    /// <summary>True when <paramref name="actual"/> holds exactly the bytes and tokens of <paramref name="expected"/>.</summary>
    public static bool SameBits(KvBlock actual, KvBlock expected) =>
        actual.Tokens.SequenceEqual(expected.Tokens)
        && actual.Keys.dtype == expected.Keys.dtype
        && actual.Keys.shape.SequenceEqual(expected.Keys.shape)
        && actual.Keys.bytes.SequenceEqual(expected.Keys.bytes)
        && actual.Values.bytes.SequenceEqual(expected.Values.bytes);

    /// <summary>Looks <paramref name="expected"/> up in <paramref name="store"/>: "miss", "hit" (bit-exact) or "wrong" (a hit with other states).</summary>
    public static async Task<string> LookUpAsync(IKvBlockStore store, KvBlock expected)
    {
        var found = await store.TryGetAsync(expected.Key, expected.Tokens.ToArray());
        if (found is null)
        {
            return "miss";
        }

        try
        {
            return SameBits(found, expected) ? "hit" : "wrong";
        }
        finally
        {
            found.Release();
        }
    }
}
