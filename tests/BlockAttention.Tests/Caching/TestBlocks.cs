using BlockAttention.Caching;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Caching;

/// <summary>Small blocks, <c>[2 layers, 2 kvHeads, n, 8]</c>, for the store's tests.</summary>
internal static class TestBlocks
{
    public const string Fingerprint = "test-model";
    public const int Layers = 2;
    public const int KvHeads = 2;
    public const int HeadDim = 8;

    /// <summary>Distinct token ids per <paramref name="seed"/>.</summary>
    public static int[] Tokens(int seed, int length = 4) => Enumerable.Range(0, length).Select(i => seed * 1000 + i).ToArray();

    /// <summary>A block of random states, keyed by its tokens.</summary>
    public static KvBlock Random(int[] tokens, ScalarType dtype = ScalarType.Float32) =>
        Random(BlockKey.For(Fingerprint, tokens), tokens, dtype);

    /// <summary>A block of random states under <paramref name="key"/> (which may belong to other tokens, to fake a collision).</summary>
    public static KvBlock Random(BlockKey key, int[] tokens, ScalarType dtype = ScalarType.Float32)
    {
        long[] shape = Shape(tokens.Length);
        return new KvBlock(key, tokens, randn(shape, dtype: dtype), randn(shape, dtype: dtype));
    }

    /// <summary>A block whose keys are all <paramref name="value"/> and values all <c>-value</c>, so a reader can check it holds its own block.</summary>
    public static KvBlock Filled(int[] tokens, float value)
    {
        long[] shape = Shape(tokens.Length);
        return new KvBlock(BlockKey.For(Fingerprint, tokens), tokens, full(shape, value), full(shape, -value));
    }

    /// <summary>Expected size, computed independently of <see cref="KvBlock.SizeInBytes"/>: keys and values, numel times element size.</summary>
    public static long SizeOf(int length, ScalarType dtype = ScalarType.Float32)
    {
        int elementSize = dtype switch
        {
            ScalarType.Float32 => 4,
            ScalarType.BFloat16 or ScalarType.Float16 => 2,
            _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
        };
        return 2L * Layers * KvHeads * length * HeadDim * elementSize;
    }

    /// <summary>True when every element of <paramref name="tensor"/> equals <paramref name="value"/>.</summary>
    public static bool AllEqual(Tensor tensor, float value)
    {
        using var scope = NewDisposeScope();
        // An explicit scalar, disposed after the call: an implicit one is a temporary whose finalizer
        // may free its native value while libtorch still reads it (seen once under parallel tests).
        using var target = value.ToScalar();
        return tensor.eq(target).all().item<bool>();
    }

    /// <summary>Polls <paramref name="condition"/> until it holds, failing after a timeout; for effects of the cache's background callbacks.</summary>
    public static async Task Eventually(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting until {what}");
            }

            await Task.Delay(5);
        }
    }

    private static long[] Shape(int length) => [Layers, KvHeads, length, HeadDim];
}

/// <summary>A clock that moves only when told, so that access order and expiry are deterministic.</summary>
internal sealed class ManualTimeProvider : TimeProvider
{
    private long _ticks = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero).UtcTicks;

    public override DateTimeOffset GetUtcNow() => new(Interlocked.Read(ref _ticks), TimeSpan.Zero);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
