using System.Diagnostics;

namespace BlockAttention.PackageTests;

/// <summary>Runs a bash command line from the repository root, as a reader of the READMEs or CI would.</summary>
internal static class Shell
{
    // Set by the `dotnet test` that runs us; they would pin the command's builds to this build's SDK paths.
    private static readonly string[] s_outerBuildVariables =
        ["MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly"];

    /// <summary>Runs <paramref name="command"/>; its exit code and everything it wrote (stdout and stderr together).</summary>
    /// <exception cref="TimeoutException">It ran longer than <paramref name="timeout"/>; it was killed.</exception>
    public static async Task<(int ExitCode, string Output)> RunAsync(string command, TimeSpan timeout)
    {
        // The output goes to a file, not to a pipe of ours: a build server that one of its builds
        // starts inherits the output and could keep a pipe open long after the command ends.
        string log = Path.Combine(Path.GetTempPath(), $"blockattention-shell-{Guid.NewGuid():N}.log");
        var start = new ProcessStartInfo("bash")
        {
            ArgumentList = { "-c", "exec bash -c \"$0\" >\"$1\" 2>&1 </dev/null", command, log },
            WorkingDirectory = RepositoryPaths.Root,
            UseShellExecute = false,
        };
        foreach (string variable in s_outerBuildVariables)
        {
            start.Environment.Remove(variable);
        }

        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        try
        {
            using var process = Process.Start(start)!;
            using var cancellation = new CancellationTokenSource(timeout);
            try
            {
                await process.WaitForExitAsync(cancellation.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"'{command}' ran longer than {timeout}:\n{ReadLog(log)}");
            }

            return (process.ExitCode, ReadLog(log));
        }
        finally
        {
            File.Delete(log);
        }
    }

    private static string ReadLog(string path) => File.Exists(path) ? File.ReadAllText(path) : "";
}
