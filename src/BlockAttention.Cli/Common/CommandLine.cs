using System.Globalization;

namespace BlockAttention.Cli;

/// <summary>
/// The parsed arguments of one command: <c>--name value</c> options and <c>--flag</c> switches.
/// Deliberately tiny: the CLI has a handful of commands and no dependency is worth it.
/// </summary>
internal sealed class CommandLine
{
    private readonly Dictionary<string, string?> _options;

    private CommandLine(string command, Dictionary<string, string?> options)
    {
        Command = command;
        _options = options;
    }

    public string Command { get; }

    /// <summary>Parses <c>command --a 1 --flag --b x</c>; an option followed by another option or nothing is a flag.</summary>
    public static CommandLine Parse(string[] args)
    {
        if (args.Length == 0)
        {
            throw new UsageException("no command given");
        }

        var options = new Dictionary<string, string?>(StringComparer.Ordinal);
        for (int i = 1; i < args.Length; i++)
        {
            string arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                throw new UsageException($"unexpected argument '{arg}'");
            }

            string name = arg[2..];
            string? value = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : null;
            if (!options.TryAdd(name, value))
            {
                throw new UsageException($"option '--{name}' given twice");
            }
        }

        return new CommandLine(args[0], options);
    }

    public string Required(string name) =>
        Optional(name) ?? throw new UsageException($"'{Command}' needs --{name}");

    public string? Optional(string name)
    {
        if (!_options.TryGetValue(name, out string? value))
        {
            return null;
        }

        return value ?? throw new UsageException($"--{name} needs a value");
    }

    public int OptionalInt(string name, int fallback)
    {
        string? text = Optional(name);
        if (text is null)
        {
            return fallback;
        }

        return int.TryParse(text, out int value) ? value : throw new UsageException($"--{name} expects a whole number, got '{text}'");
    }

    public double OptionalDouble(string name, double fallback)
    {
        string? text = Optional(name);
        if (text is null)
        {
            return fallback;
        }

        // Invariant culture: "0.7" must mean the same on every machine.
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)
            ? value
            : throw new UsageException($"--{name} expects a number, got '{text}'");
    }

    /// <summary>The value of <c>--name</c>, which must be one of <paramref name="choices"/>; <paramref name="fallback"/> when absent.</summary>
    public string Choice(string name, string fallback, params string[] choices)
    {
        string value = Optional(name) ?? fallback;
        return Array.IndexOf(choices, value) >= 0
            ? value
            : throw new UsageException($"--{name} must be one of {string.Join(", ", choices)}; got '{value}'");
    }

    public bool Flag(string name)
    {
        if (!_options.TryGetValue(name, out string? value))
        {
            return false;
        }

        // "--json out.txt" would otherwise swallow a stray argument without a word.
        return value is null ? true : throw new UsageException($"--{name} is a switch and takes no value, got '{value}'");
    }

    /// <summary>Fails on options no command asked about, so a typo is never silently ignored.</summary>
    public void RejectUnknown(params string[] known)
    {
        foreach (string name in _options.Keys)
        {
            if (Array.IndexOf(known, name) < 0)
            {
                throw new UsageException($"'{Command}' has no option --{name}");
            }
        }
    }
}

/// <summary>A mistake in how the CLI was called; printed with the usage text, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
