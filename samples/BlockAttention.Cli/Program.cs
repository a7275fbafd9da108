using BlockAttention.Cli;
using BlockAttention.Cli.Commands;

const string Usage = """
    blockattn: Block-Attention for Llama checkpoints

      blockattn verify   --model DIR --golden DIR [--device cpu|cuda] [--dtype float32|bfloat16]
      blockattn tokenize --tokenizer FILE (--text S | --golden FILE)

    Exit code 0: success (and every check within tolerance); 1: a check failed; 2: bad usage or input.
    """;

try
{
    var commandLine = CommandLine.Parse(args);
    return commandLine.Command switch
    {
        "tokenize" => TokenizeCommand.Run(commandLine),
        "bench" => BenchCommand.Run(commandLine),
        "help" or "--help" or "-h" => Help(),
        _ => throw new UsageException($"unknown command '{commandLine.Command}'"),
    };
}
catch (UsageException e)
{
    Console.Error.WriteLine($"blockattn: {e.Message}");
    Console.Error.WriteLine(Usage);
    return 2;
}

static int Help()
{
    Console.WriteLine(Usage);
    return 0;
}
