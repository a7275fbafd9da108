using BlockAttention.Cli.Commands;
using BlockAttention.Runtime;

namespace BlockAttention.Cli;

/// <summary>
/// The whole CLI as one call, so that tests run commands in-process: arguments in, text out,
/// exit code back. <c>Program</c> only passes the console.
/// </summary>
internal static class CliApp
{
    public const string Usage = """
        blockattn: Block-Attention for Llama checkpoints

          blockattn verify   --model DIR --golden DIR [--device cpu|cuda] [--dtype float32|bfloat16]
                             [--mode full|block|both] [--session]
          blockattn generate --model DIR --blocks FILE.json [--mode block|full|onepass] [--max-new-tokens N]
                             [--temperature T --top-k K --top-p P --seed S] [--device cpu|cuda]
                             [--dtype float32|bfloat16] [--json] [--repeat N]
          blockattn tokenize --tokenizer FILE (--text S | --golden FILE)
          blockattn bench    [--preset smollm2-135m|llama-3.2-1b|llama-3.1-8b | --model DIR] [--device cpu|cuda]
                             [--dtype float32|bfloat16] [--lengths 512,1024,...] [--repeats N] [--out DIR] [--soak N]
          blockattn prepare  --input FILE.jsonl --out FILE.jsonl (--tokenizer FILE | --model DIR) [--max-length N]
          blockattn train    (--model DIR | --preset NAME) --data FILE.jsonl --out DIR [--steps N] [--batch B] [--lr LR]

        'blockattn COMMAND --help' describes a command.
        Exit code 0: success (and every check within tolerance); 1: a check failed; 2: bad usage or input;
        3: an unexpected error (a bug; the message has the details).
        """;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(args);
        try
        {
            // Before any TorchSharp call: the CLI may touch torch (e.g. CUDA checks) before a BlockAttention type.
            TorchSharpNativeLibrary.EnsureRegistered();
            var commandLine = CommandLine.Parse(args);
            if (commandLine.Command is "help" or "--help" or "-h")
            {
                stdout.WriteLine(Usage);
                return ExitCodes.Success;
            }

            string? help = commandLine.Command switch
            {
                "verify" => VerifyCommand.Help,
                "generate" => GenerateCommand.Help,
                "tokenize" => "blockattn tokenize --tokenizer FILE (--text S | --golden FILE)",
                "bench" => BenchCommand.Usage,
                "prepare" => PrepareCommand.Help,
                "train" => TrainCommand.Help,
                _ => throw new UsageException($"unknown command '{commandLine.Command}'"),
            };
            if (commandLine.Flag("help"))
            {
                stdout.WriteLine(help);
                return ExitCodes.Success;
            }

            return commandLine.Command switch
            {
                "verify" => VerifyCommand.Run(commandLine, stdout),
                // Off the caller's thread: no synchronization context to block on while it awaits.
                "generate" => Task.Run(() => GenerateCommand.RunAsync(commandLine, stdout)).GetAwaiter().GetResult(),
                // BenchCommand writes to the console itself: its table is for people, its JSON for files.
                "bench" => BenchCommand.Run(commandLine),
                "prepare" => PrepareCommand.Run(commandLine, stdout),
                "train" => TrainCommand.Run(commandLine, stdout),
                // TokenizeCommand writes to the console itself (it predates CliApp).
                _ => TokenizeCommand.Run(commandLine),
            };
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
        catch (Exception e)
        {
            stderr.WriteLine($"blockattn: unexpected error: {e}");
            return ExitCodes.UnexpectedError;
        }
    }
}
