namespace BlockAttention.Caching;

/// <summary>
/// Implemented by a store that wants to know what encoding costs, to choose between fetching a
/// block and encoding it again (see <see cref="TieredKvBlockStore"/>). <see cref="BlockSession"/>
/// reports every block it encodes to its store when the store implements this.
/// </summary>
public interface IKvBlockEncodingObserver
{
    /// <summary>A block of <paramref name="tokens"/> tokens was encoded in <paramref name="elapsed"/> (model time only, not waiting).</summary>
    void OnBlockEncoded(int tokens, TimeSpan elapsed);
}
