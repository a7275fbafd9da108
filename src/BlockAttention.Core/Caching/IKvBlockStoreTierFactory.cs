namespace BlockAttention.Caching;

/// <summary>
/// Creates the tiers of a kind that this package does not build itself, such as <c>redis:HOST:PORT</c>
/// (the BlockAttention.Redis package provides one). Hosts that build their store from a
/// <see cref="KvBlockStoreSpec"/> find the factories registered as services.
/// </summary>
public interface IKvBlockStoreTierFactory
{
    /// <summary>The kind of tier this factory creates.</summary>
    KvBlockStoreKind Kind { get; }

    /// <summary>Creates the store of <paramref name="tier"/>, which is of <see cref="Kind"/>, with the dtype, device and logging of <paramref name="settings"/>.</summary>
    IKvBlockStore Create(KvBlockStoreTierSpec tier, KvBlockStoreSettings settings);
}
