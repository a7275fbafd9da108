using BlockAttention.Cli;

// Ctrl+C asks the running verb to stop at its next cancellation point instead of killing the process
// mid-write; a second Ctrl+C ends the process as usual.
using var cancellation = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    if (!cancellation.IsCancellationRequested)
    {
        e.Cancel = true;
        cancellation.Cancel();
    }
};

return await CliApp.RunAsync(args, Console.Out, Console.Error, cancellation.Token);
