using System.Text;
using BlockAttention.Cli.Bench;
using BlockAttention.Cli.Eval;
using BlockAttention.Cli.Generate;
using BlockAttention.Cli.Tokenize;
using BlockAttention.Cli.Verify;
using BlockAttention.Runtime;

namespace BlockAttention.Cli;

/// <summary>
/// The whole CLI as one call, so that tests run commands in-process: arguments in, text out,
/// exit code back. <c>Program</c> only passes the console and Ctrl+C.
/// </summary>
internal static class CliApp
{
    /// <summary>Every verb, in the order the usage text lists them. A new verb: a folder with its command, and one entry here.</summary>
    public static IReadOnlyList<Verb> Verbs { get; } =
    [
        VerifyCommand.Verb,
        GenerateCommand.Verb,
        TokenizeCommand.Verb,
        BenchCommand.Verb,
        EvalCommand.Verb,
    ];

    /// <summary>The text printed for <c>blockattn --help</c> and after a usage mistake.</summary>
    public static string Usage { get; } = BuildUsage();

    /// <summary>Runs one command to its end, blocking; for tests and other synchronous callers.</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr) =>
        // Off the caller's thread: no synchronization context to block on while the verb awaits.
        Task.Run(() => RunAsync(args, stdout, stderr, CancellationToken.None)).GetAwaiter().GetResult();

    /// <summary>Runs one command; <paramref name="cancellationToken"/> stops a long-running verb (Ctrl+C).</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(args);
        try
        {
            // Before any TorchSharp call: a verb may touch torch (e.g. CUDA checks) before a BlockAttention type.
            TorchSharpNativeLibrary.EnsureRegistered();
            var commandLine = CommandLine.Parse(args);
            if (commandLine.Command is "help" or "--help" or "-h")
            {
                stdout.WriteLine(Usage);
                return ExitCodes.Success;
            }

            var verb = Verbs.FirstOrDefault(v => v.Name == commandLine.Command)
                ?? throw new UsageException($"unknown command '{commandLine.Command}'");
            if (commandLine.Flag("help"))
            {
                stdout.WriteLine(verb.Help);
                return ExitCodes.Success;
            }

            return await verb.Run(commandLine, stdout, stderr, cancellationToken).ConfigureAwait(false);
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"blockattn: {e.Message}");
            stderr.WriteLine(Usage);
            return ExitCodes.BadInput;
        }
        catch (InputException e)
        {
            stderr.WriteLine($"blockattn: {e.Message}");
            return ExitCodes.BadInput;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            stderr.WriteLine("blockattn: cancelled");
            return ExitCodes.Cancelled;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"blockattn: unexpected error: {e}");
            return ExitCodes.UnexpectedError;
        }
    }

    private static string BuildUsage()
    {
        int width = Math.Max(8, Verbs.Max(v => v.Name.Length));
        string indent = new(' ', "  blockattn ".Length + width + 1);
        var usage = new StringBuilder();
        usage.AppendLine("blockattn: Block-Attention for Llama checkpoints");
        usage.AppendLine();
        foreach (var verb in Verbs)
        {
            string[] lines = verb.Synopsis.Split('\n', StringSplitOptions.TrimEntries);
            usage.AppendLine($"  blockattn {verb.Name.PadRight(width)} {lines[0]}");
            foreach (string line in lines.Skip(1))
            {
                usage.AppendLine(indent + line);
            }
        }

        usage.AppendLine();
        usage.AppendLine("'blockattn COMMAND --help' describes a command.");
        usage.AppendLine("Exit code 0: success (and every check within tolerance); 1: a check failed; 2: bad usage or input;");
        usage.Append("3: an unexpected error (a bug; the message has the details); 130: cancelled (Ctrl+C).");
        return usage.ToString();
    }
}
