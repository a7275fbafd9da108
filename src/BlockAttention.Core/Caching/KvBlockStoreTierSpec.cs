using System.Globalization;

namespace BlockAttention.Caching;

/// <summary>One tier of a <see cref="KvBlockStoreSpec"/>.</summary>
/// <param name="Kind">What kind of store.</param>
/// <param name="Directory">For <see cref="KvBlockStoreKind.File"/>: the directory, as written.</param>
/// <param name="Host">For <see cref="KvBlockStoreKind.Redis"/>: the server's host name or address.</param>
/// <param name="Port">For <see cref="KvBlockStoreKind.Redis"/>: the server's port.</param>
public sealed record KvBlockStoreTierSpec(KvBlockStoreKind Kind, string? Directory = null, string? Host = null, int Port = 0)
{
    /// <summary>The tier as a spec string: <c>memory</c>, <c>file:DIR</c> or <c>redis:HOST:PORT</c>.</summary>
    public override string ToString() => Kind switch
    {
        KvBlockStoreKind.Memory => "memory",
        KvBlockStoreKind.File => $"file:{Directory}",
        _ => string.Create(CultureInfo.InvariantCulture, $"redis:{(Host!.Contains(':', StringComparison.Ordinal) ? $"[{Host}]" : Host)}:{Port}"),
    };
}
