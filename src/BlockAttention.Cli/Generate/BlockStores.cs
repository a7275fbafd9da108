using BlockAttention.Caching;
using BlockAttention.Models;
using BlockAttention.Redis;

namespace BlockAttention.Cli.Generate;

/// <summary>The block store <c>generate</c> runs with, chosen by <c>--store</c>, so that repeated runs of a prompt reuse its encoded passages.</summary>
internal static class BlockStores
{
    /// <summary>The store when <c>--store</c> is not given: in-process memory, for <c>--repeat</c>.</summary>
    public const string DefaultSpec = "memory";

    /// <summary>
    /// Room for the passages of one CLI session with some to spare: a 500-token block of an 8B
    /// Llama in bfloat16 is about 64 MiB, so this holds about 30 of them before evicting.
    /// </summary>
    public const long MaxBytes = 2L << 30;

    /// <summary>Parses <c>--store</c>; a malformed spec is a usage error that says what is accepted.</summary>
    public static KvBlockStoreSpec Parse(string? spec)
    {
        try
        {
            return KvBlockStoreSpec.Parse(spec ?? DefaultSpec);
        }
        catch (FormatException e)
        {
            throw new UsageException($"--store: {e.Message}");
        }
    }

    /// <summary>The store of <paramref name="spec"/> for <paramref name="model"/> (null for <c>none</c>). The caller disposes it with <see cref="DisposeAsync"/>.</summary>
    public static IKvBlockStore? Create(KvBlockStoreSpec spec, ModelInfo model)
    {
        var settings = new KvBlockStoreSettings
        {
            DType = model.DType,
            Device = model.Device.ToString(),
            MemoryMaxBytes = MaxBytes,
        }.WithRedis();
        try
        {
            return KvBlockStoreFactory.Create(spec, settings);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException($"--store {spec}: {e.Message}", e);
        }
    }

    /// <summary>Disposes a store; a tiered store first finishes writing its new blocks to the slow tier.</summary>
    public static ValueTask DisposeAsync(IKvBlockStore? store) => StoreDisposal.DisposeAsync(store);
}
