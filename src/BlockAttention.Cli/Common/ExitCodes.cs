namespace BlockAttention.Cli;

/// <summary>The process exit codes, the same for every command.</summary>
internal static class ExitCodes
{
    /// <summary>Success, and every check within tolerance.</summary>
    public const int Success = 0;

    /// <summary>A check failed (a result outside tolerance, or outside what an <c>--expect-*</c> option asked for).</summary>
    public const int CheckFailed = 1;

    /// <summary>Bad usage or unusable input (missing folder, malformed file, unavailable device).</summary>
    public const int BadInput = 2;

    /// <summary>An unexpected error: a bug in the CLI or the library, reported with its stack trace.</summary>
    public const int UnexpectedError = 3;

    /// <summary>Stopped by Ctrl+C (128 + SIGINT, as shells report it).</summary>
    public const int Cancelled = 130;
}
