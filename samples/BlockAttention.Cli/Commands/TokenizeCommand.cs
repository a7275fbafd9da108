namespace BlockAttention.Cli.Commands;

/// <summary><c>blockattn tokenize</c>: ids for a text, or a check of a golden tokenizer file.</summary>
internal static class TokenizeCommand
{
    public static int Run(CommandLine commandLine)
    {
        commandLine.RejectUnknown("tokenizer", "text", "golden");
        throw new UsageException("tokenize is not built yet");
    }
}
