using System.Globalization;

namespace BlockAttention.Caching;

/// <summary>
/// A block store described as a string, the one syntax shared by configuration and command lines:
/// <list type="bullet">
/// <item><c>none</c>: no store; every block is encoded every time.</item>
/// <item><c>memory</c>: in-process memory (the default of most hosts).</item>
/// <item><c>file:DIR</c>: one file per block under <c>DIR</c>; survives restarts and is shared by processes on one machine.</item>
/// <item><c>redis:HOST:PORT</c>: a Redis server (port 6379 when omitted; an IPv6 address in brackets); shared by machines.</item>
/// <item><c>memory+file:DIR</c>, <c>memory+redis:HOST:PORT</c>: a memory tier in front of a slow tier
/// (<see cref="TieredKvBlockStore"/>): the usual choice for a server.</item>
/// </list>
/// Kinds are case-insensitive; a directory is taken verbatim (it may contain <c>:</c> or <c>+</c>).
/// </summary>
/// <param name="Tiers">The tiers, fastest first; empty for <c>none</c>.</param>
public sealed record KvBlockStoreSpec(IReadOnlyList<KvBlockStoreTierSpec> Tiers)
{
    /// <summary>The default Redis port.</summary>
    public const int DefaultRedisPort = 6379;

    /// <summary>No store.</summary>
    public static KvBlockStoreSpec None { get; } = new([]);

    /// <summary>In-process memory only.</summary>
    public static KvBlockStoreSpec Memory { get; } = new([new KvBlockStoreTierSpec(KvBlockStoreKind.Memory)]);

    /// <summary>Parses a spec string (see the type's summary).</summary>
    /// <exception cref="FormatException">The string is not a spec; the message says what is wrong and what is accepted.</exception>
    public static KvBlockStoreSpec Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        string text = spec.Trim();
        if (text.Length == 0)
        {
            throw Bad(spec, "it is empty");
        }

        if (text.Equals("none", StringComparison.OrdinalIgnoreCase))
        {
            return None;
        }

        if (text.Equals("memory", StringComparison.OrdinalIgnoreCase))
        {
            return Memory;
        }

        const string MemoryPrefix = "memory+";
        if (text.StartsWith(MemoryPrefix, StringComparison.OrdinalIgnoreCase))
        {
            var slow = ParseSlowTier(spec, text[MemoryPrefix.Length..]);
            return new KvBlockStoreSpec([new KvBlockStoreTierSpec(KvBlockStoreKind.Memory), slow]);
        }

        return new KvBlockStoreSpec([ParseSlowTier(spec, text)]);
    }

    /// <summary>Parses a spec string, or returns false with the reason in <paramref name="error"/>.</summary>
    public static bool TryParse(string? spec, out KvBlockStoreSpec? result, out string? error)
    {
        try
        {
            result = Parse(spec ?? throw new FormatException("no store spec was given"));
            error = null;
            return true;
        }
        catch (FormatException e)
        {
            result = null;
            error = e.Message;
            return false;
        }
    }

    /// <summary>True when the spec has a tier that outlives the process (file or Redis).</summary>
    public bool IsPersistent => Tiers.Any(tier => tier.Kind != KvBlockStoreKind.Memory);

    /// <summary>The spec as a string that <see cref="Parse"/> reads back.</summary>
    public override string ToString() => Tiers.Count == 0 ? "none" : string.Join('+', Tiers);

    private static KvBlockStoreTierSpec ParseSlowTier(string spec, string text)
    {
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        string kind = colon < 0 ? text : text[..colon];
        string rest = colon < 0 ? "" : text[(colon + 1)..];
        if (kind.Equals("file", StringComparison.OrdinalIgnoreCase))
        {
            if (string.IsNullOrWhiteSpace(rest))
            {
                throw Bad(spec, "file needs a directory, as in file:/var/cache/blockattention");
            }

            return new KvBlockStoreTierSpec(KvBlockStoreKind.File, Directory: rest);
        }

        if (kind.Equals("redis", StringComparison.OrdinalIgnoreCase))
        {
            var (host, port) = ParseEndpoint(spec, rest);
            return new KvBlockStoreTierSpec(KvBlockStoreKind.Redis, Host: host, Port: port);
        }

        if (kind.Equals("memory", StringComparison.OrdinalIgnoreCase))
        {
            throw Bad(spec, "memory can only be the first tier, as in memory+file:DIR");
        }

        throw Bad(spec, $"'{kind}' is not a store kind");
    }

    private static (string Host, int Port) ParseEndpoint(string spec, string endpoint)
    {
        if (string.IsNullOrWhiteSpace(endpoint))
        {
            throw Bad(spec, "redis needs a host, as in redis:localhost:6379");
        }

        string host;
        string? port;
        if (endpoint.StartsWith('['))
        {
            int close = endpoint.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                throw Bad(spec, "an IPv6 address needs a closing ]");
            }

            host = endpoint[1..close];
            string after = endpoint[(close + 1)..];
            port = after.Length == 0 ? null : after.StartsWith(':') ? after[1..] : throw Bad(spec, "expected :PORT after the IPv6 address");
        }
        else
        {
            int colon = endpoint.LastIndexOf(':');
            host = colon < 0 ? endpoint : endpoint[..colon];
            port = colon < 0 ? null : endpoint[(colon + 1)..];
            if (host.Contains(':', StringComparison.Ordinal))
            {
                throw Bad(spec, "write an IPv6 address in brackets, as in redis:[::1]:6379");
            }
        }

        if (host.Length == 0)
        {
            throw Bad(spec, "the redis host is empty");
        }

        if (port is null)
        {
            return (host, DefaultRedisPort);
        }

        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out int number) || number is < 1 or > 65535)
        {
            throw Bad(spec, $"'{port}' is not a port (1 to 65535)");
        }

        return (host, number);
    }

    private static FormatException Bad(string spec, string why) => new(
        $"'{spec}' is not a block store spec: {why}. Use none, memory, file:DIR, redis:HOST:PORT, memory+file:DIR or memory+redis:HOST:PORT.");
}
