namespace BlockAttention.Cli;

/// <summary>
/// One verb of the CLI (<c>verify</c>, <c>generate</c>, ...): the name typed after <c>blockattn</c>,
/// its options in one or a few lines for the overall usage text, its full help (<c>--help</c>),
/// and what it runs. Each verb lives in its own folder and exposes one of these;
/// <see cref="CliApp.Verbs"/> lists them.
/// </summary>
/// <param name="Name">The word typed after <c>blockattn</c>.</param>
/// <param name="Synopsis">The options, as in <c>--model DIR [--device cpu|cuda]</c>; continuation lines are indented for the usage text.</param>
/// <param name="Help">The text <c>blockattn NAME --help</c> prints.</param>
/// <param name="Run">Runs the verb; returns an <see cref="ExitCodes"/> value.</param>
internal sealed record Verb(string Name, string Synopsis, string Help, Verb.Handler Run)
{
    /// <summary>
    /// Runs a verb with its parsed arguments. Results go to <paramref name="stdout"/>, progress and
    /// diagnostics to <paramref name="stderr"/>. Throws <see cref="UsageException"/> or
    /// <see cref="InputException"/> for bad usage or input; <see cref="CliApp"/> turns them into
    /// messages and exit code 2.
    /// </summary>
    public delegate Task<int> Handler(CommandLine commandLine, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken);
}
