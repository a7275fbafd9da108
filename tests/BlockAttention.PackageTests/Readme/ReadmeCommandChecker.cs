using System.Text.RegularExpressions;

namespace BlockAttention.PackageTests.Readme;

/// <summary>What the checker does with a command line of a README.</summary>
internal enum Handling
{
    /// <summary>Runs it from the repository root; it must exit 0. Demoted to a static check when an input it names is absent or it needs CUDA.</summary>
    Run,

    /// <summary>The project it names must exist, and every <c>--option</c> it gives a <c>blockattn</c> verb must be in that verb's help.</summary>
    CheckOptions,

    /// <summary>The project or script it names must exist.</summary>
    CheckPaths,

    /// <summary>Not run here, for the reason given (run elsewhere, or needs a machine this is not).</summary>
    NotRun,
}

/// <summary>A kind of command line and what the checker does with it, first match wins.</summary>
internal sealed record CommandRule(string Pattern, Handling Handling, string Reason)
{
    public bool Matches(ReadmeCommand command) => Regex.IsMatch(command.Text, Pattern, RegexOptions.CultureInvariant);
}

/// <summary>
/// Checks that the commands of the READMEs work from a fresh clone. Cheap ones run as written; the
/// others are checked for what can be checked without their hardware or their hours: that the
/// projects and scripts they name exist, and that every option they give a <c>blockattn</c> verb
/// is one the verb knows. A command line that no rule covers is a problem too, so a new kind of
/// command gets a decision (and a reason) when it is added to a README.
/// </summary>
internal sealed class ReadmeCommandChecker(string root, Func<string, TimeSpan, Task<(int ExitCode, string Output)>> shell)
{
    public const string CliProject = "src/BlockAttention.Cli";
    public const string CliDll = "src/BlockAttention.Cli/bin/Release/net10.0/linux-x64/blockattn.dll";

    private static readonly TimeSpan s_runTimeout = TimeSpan.FromMinutes(8);

    private readonly Dictionary<string, string?> _help = [];
    private readonly HashSet<string> _cliRuns = [];
    // Once per test run: the tests that use a checker run one after the other (one collection).
    private static bool s_cliBuilt;

    /// <summary>Every kind of command the READMEs hold; the order matters (first match wins).</summary>
    public static IReadOnlyList<CommandRule> Rules { get; } =
    [
        new(@"^dotnet test ", Handling.NotRun, "the test suite itself; CI runs it (.ci/run)"),
        new(@"^dotnet build ", Handling.CheckPaths, "the build that the tests start from"),
        new(@"^dotnet pack ", Handling.CheckPaths, "eng/verify-consumer.sh packs these projects into a temporary feed and uses them"),
        new(@"^dotnet publish ", Handling.CheckPaths, "a step of the GPU recipe; eng/verify-consumer.sh runs the packed (published) tool"),
        new(@"^dotnet (new|nuget add) ", Handling.NotRun, "sets up the reader's own app; eng/verify-consumer.sh sets up fresh apps in a temporary folder"),
        new(@"^dotnet add ", Handling.NotRun, "eng/verify-consumer.sh adds the packages to a fresh app in a temporary folder"),
        new(@"^dotnet tool install ", Handling.NotRun, "installs into the reader's tools; eng/verify-consumer.sh installs into a temporary folder and runs the tool"),
        new(@"^(export LD_LIBRARY_PATH=|rm )", Handling.NotRun, "a step of the GPU recipe, for a machine with a CUDA build of PyTorch"),
        new(@"^dotnet path/to/", Handling.NotRun, "a placeholder for the reader's own application"),
        new(@"(^|/)blockattn(\.dll)? bench\b| -- bench\b", Handling.CheckOptions, "minutes of CPU time (hours on a GPU's default lengths)"),
        new(@"^dotnet run .*--project benchmarks/", Handling.CheckPaths, "minutes of CPU time, or it rewrites the committed results"),
        new(@"^(\w+=\S+ )*dotnet run .*--project samples/BlockAttention\.Server\b", Handling.CheckPaths,
            "a server runs until it is stopped; tests/BlockAttention.Server.Tests hosts its program (TestServer and Kestrel)"),
        new(@"^dotnet run .*--project samples/.* --preset ", Handling.CheckPaths,
            "a preset builds a published model shape with random weights: minutes of CPU beside the fixture's seconds"),
        new(@"^dotnet run .*--project (src|samples)/", Handling.Run, "cheap on the bundled fixtures"),
        new(@"^(\S*/)?blockattn(\.dll)? ", Handling.Run, "cheap on the bundled fixtures (run through the built CLI)"),
    ];

    /// <summary>Checks every command; returns one line per problem, and a log of what was done in <paramref name="log"/>.</summary>
    public async Task<List<string>> CheckAsync(IEnumerable<ReadmeCommand> commands, List<string> log)
    {
        var problems = new List<string>();
        foreach (var command in commands)
        {
            var rule = Rules.FirstOrDefault(r => r.Matches(command));
            if (rule is null)
            {
                problems.Add($"{command}: no rule says how to check this command (add one to {nameof(ReadmeCommandChecker)}.{nameof(Rules)})");
                continue;
            }

            string? problem = await CheckAsync(command, rule, log);
            if (problem is not null)
            {
                problems.Add($"{command}: {problem}");
            }
        }

        return problems;
    }

    private async Task<string?> CheckAsync(ReadmeCommand command, CommandRule rule, List<string> log)
    {
        if (rule.Handling == Handling.NotRun)
        {
            log.Add($"not run     {command} ({rule.Reason})");
            return null;
        }

        string? missing = MissingPaths(command);
        if (missing is not null)
        {
            return missing;
        }

        var cli = CliInvocation.Of(command);
        var handling = rule.Handling;
        string reason = rule.Reason;
        if (handling == Handling.Run && MissingInput(command, cli) is string absent)
        {
            (handling, reason) = (cli is null ? Handling.CheckPaths : Handling.CheckOptions, $"{absent} is the reader's own");
        }

        if (handling == Handling.Run && command.Text.Contains("--device cuda", StringComparison.Ordinal))
        {
            (handling, reason) = (cli is null ? Handling.CheckPaths : Handling.CheckOptions, "needs a CUDA device");
        }

        if (cli is not null && handling is Handling.Run or Handling.CheckOptions)
        {
            string? optionProblem = await CheckOptionsAsync(cli);
            if (optionProblem is not null)
            {
                return optionProblem;
            }
        }

        if (handling != Handling.Run)
        {
            log.Add($"{(handling == Handling.CheckOptions ? "options" : "paths"),-11} {command} ({reason})");
            return null;
        }

        string toRun = command.Text;
        if (cli is not null)
        {
            // One run per argument list: the same verb from `dotnet run` and from the installed tool is one check.
            if (!_cliRuns.Add(string.Join(' ', cli.Arguments)))
            {
                log.Add($"ran before  {command}");
                return null;
            }

            if (!cli.ViaDotnetRun)
            {
                await EnsureCliBuiltAsync();
                toRun = $"dotnet {CliDll} {string.Join(' ', cli.Arguments)}";
            }
        }

        var (exitCode, output) = await shell(toRun, s_runTimeout);
        log.Add($"ran         {command}: exit {exitCode}");
        return exitCode == 0 ? null : $"exit code {exitCode}:\n{Tail(output)}";
    }

    /// <summary>A project, script or program the command names that is not in the repository.</summary>
    private string? MissingPaths(ReadmeCommand command)
    {
        string[] words = command.Words;
        for (int i = 0; i < words.Length; i++)
        {
            string? path = words[i] switch
            {
                "--project" when i + 1 < words.Length => words[i + 1],
                "bash" when i + 1 < words.Length && !words[i + 1].StartsWith('-') => words[i + 1],
                _ when i <= 2 && words[i] == "dotnet" && i + 1 < words.Length && words[i + 1] is "build" or "pack" or "publish" or "test"
                    && i + 2 < words.Length && !words[i + 2].StartsWith('-') => words[i + 2],
                _ => null,
            };
            if (path is not null && !path.StartsWith('$') && !File.Exists(Full(path)) && !Directory.Exists(Full(path)))
            {
                return $"'{path}' is not in the repository";
            }
        }

        string program = command.Words[0] == "dotnet" && command.Words.Length > 1 ? command.Words[1] : command.Words[0];
        if (CliInvocation.Of(command) is { ViaDotnetRun: false } && program.StartsWith("src/", StringComparison.Ordinal)
            && program != CliDll && program != Path.ChangeExtension(CliDll, null))
        {
            // The built program named by its path: it must be where a build puts it.
            return $"'{program}' is not where `dotnet build {CliProject} -c Release` puts the CLI";
        }

        return null;
    }

    /// <summary>An input the command names that is not in the repository (a checkpoint, a prompt file of the reader's).</summary>
    private string? MissingInput(ReadmeCommand command, CliInvocation? cli)
    {
        string[] arguments = cli?.Arguments ?? ArgumentsAfterSeparator(command.Words);
        for (int i = 0; i < arguments.Length; i++)
        {
            string word = arguments[i];
            bool output = i > 0 && arguments[i - 1] == "--out";
            bool pathLike = !word.StartsWith('-') && (word.Contains('/', StringComparison.Ordinal) || word.EndsWith(".json", StringComparison.Ordinal));
            if (pathLike && !output && !File.Exists(Full(word)) && !Directory.Exists(Full(word)))
            {
                return word;
            }
        }

        return null;
    }

    private async Task<string?> CheckOptionsAsync(CliInvocation cli)
    {
        if (cli.Arguments.Length == 0 || cli.Arguments[0].StartsWith('-'))
        {
            return null; // `blockattn --help` and the like
        }

        string verb = cli.Arguments[0];
        string? help = await HelpAsync(verb);
        if (help is null)
        {
            return $"'{verb}' is not a blockattn command";
        }

        foreach (string option in cli.Arguments.Skip(1).Where(a => a.StartsWith("--", StringComparison.Ordinal)))
        {
            if (!Regex.IsMatch(help, Regex.Escape(option) + @"(?![\w-])", RegexOptions.CultureInvariant))
            {
                return $"'blockattn {verb} --help' does not know {option}";
            }
        }

        return null;
    }

    private async Task<string?> HelpAsync(string verb)
    {
        if (!_help.TryGetValue(verb, out string? help))
        {
            await EnsureCliBuiltAsync();
            var (exitCode, output) = await shell($"dotnet {CliDll} {verb} --help", s_runTimeout);
            help = _help[verb] = exitCode == 0 ? output : null;
        }

        return help;
    }

    private async Task EnsureCliBuiltAsync()
    {
        if (s_cliBuilt)
        {
            return;
        }

        var (exitCode, output) = await shell($"dotnet build {CliProject} -c Release", s_runTimeout);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"dotnet build {CliProject} -c Release failed:\n{Tail(output)}");
        }

        s_cliBuilt = true;
    }

    private string Full(string path) => Path.Combine(root, path);

    private static string[] ArgumentsAfterSeparator(string[] words)
    {
        int separator = Array.IndexOf(words, "--");
        return separator < 0 ? [] : words[(separator + 1)..];
    }

    private static string Tail(string output)
    {
        string[] lines = output.TrimEnd().Split('\n');
        return string.Join('\n', lines.Skip(Math.Max(0, lines.Length - 30)));
    }
}

/// <summary>A command line that runs the blockattn CLI: through <c>dotnet run --project src/BlockAttention.Cli</c>, the installed tool, or the built program.</summary>
internal sealed record CliInvocation(bool ViaDotnetRun, string[] Arguments)
{
    public static CliInvocation? Of(ReadmeCommand command)
    {
        string[] words = command.Words;
        if (words is ["dotnet", "run", ..])
        {
            int project = Array.IndexOf(words, "--project");
            int separator = Array.IndexOf(words, "--");
            bool cli = project >= 0 && project + 1 < words.Length
                && words[project + 1].TrimEnd('/') == ReadmeCommandChecker.CliProject;
            return cli ? new CliInvocation(true, separator < 0 ? [] : words[(separator + 1)..]) : null;
        }

        int program = words is ["dotnet", _, ..] ? 1 : 0;
        return words.Length > program && Regex.IsMatch(words[program], @"(^|/)blockattn(\.dll)?$", RegexOptions.CultureInvariant)
            ? new CliInvocation(false, words[(program + 1)..])
            : null;
    }
}
