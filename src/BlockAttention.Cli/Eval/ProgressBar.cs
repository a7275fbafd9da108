namespace BlockAttention.Cli.Eval;

/// <summary>
/// A one-line progress bar on the error stream, redrawn in place on a terminal; when the stream is
/// redirected (a file, a test), a plain line at every tenth of the way instead of control characters.
/// </summary>
internal sealed class ProgressBar(TextWriter output, string label, int total)
{
    private const int Width = 30;
    private readonly bool _interactive = ReferenceEquals(output, Console.Error) && !Console.IsErrorRedirected;
    private int _lastTenth = -1;

    public void Report(int done)
    {
        if (_interactive)
        {
            int filled = total == 0 ? Width : (int)((long)done * Width / total);
            output.Write($"\r{label} [{new string('#', filled)}{new string('.', Width - filled)}] {done}/{total}");
            return;
        }

        int tenth = total == 0 ? 10 : (int)((long)done * 10 / total);
        if (tenth != _lastTenth)
        {
            _lastTenth = tenth;
            output.WriteLine($"{label}: {done}/{total}");
        }
    }

    public void Done()
    {
        if (_interactive)
        {
            output.WriteLine();
        }
    }
}
