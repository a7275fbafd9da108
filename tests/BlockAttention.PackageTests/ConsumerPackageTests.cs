using System.Diagnostics;
using Xunit.Abstractions;

namespace BlockAttention.PackageTests;

/// <summary>
/// The packages as a consumer gets them: packed, referenced from a local feed by a fresh console app
/// and a fresh ASP.NET Core app (AddBlockAttention + IChatClient, with its own tests), run
/// (eng/verify-consumer.sh).
/// </summary>
public class ConsumerPackageTests(ITestOutputHelper output)
{
    // About 40 s alone on 2 cores; far more while other test assemblies compete for them.
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(15);

    // Set by the `dotnet test` that runs us; they would pin the script's builds to this build's SDK paths.
    private static readonly string[] s_outerBuildVariables =
        ["MSBuildExtensionsPath", "MSBuildSDKsPath", "MSBUILD_EXE_PATH", "MSBuildLoadMicrosoftTargetsReadOnly"];

    [Fact]
    public async Task Fresh_apps_referencing_the_packages_load_TorchSharp_run_the_fixture_model_and_serve_chat_with_reuse()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // the script and its libtorch-cpu-linux-x64 backend are Linux x64 only
        }

        string log = Path.Combine(Path.GetTempPath(), $"blockattention-verify-consumer-{Guid.NewGuid():N}.log");
        try
        {
            int exitCode = await RunScriptAsync(log);
            string text = File.ReadAllText(log);
            output.WriteLine(text);

            exitCode.Should().Be(0, "the script failed:\n{0}", text);
            text.TrimEnd().Split('\n')[^1].Should().StartWith("verify-consumer: OK");
        }
        finally
        {
            File.Delete(log);
        }
    }

    private static async Task<int> RunScriptAsync(string log)
    {
        // The script's output goes to a file, not to a pipe of ours: a build server that one of its
        // builds starts inherits the output and could keep a pipe open long after the script ends.
        var start = new ProcessStartInfo("bash")
        {
            ArgumentList = { "-c", "exec bash \"$0\" >\"$1\" 2>&1 </dev/null", Path.Combine(RepositoryPaths.Root, "eng", "verify-consumer.sh"), log },
            WorkingDirectory = RepositoryPaths.Root,
            UseShellExecute = false,
        };
        foreach (string variable in s_outerBuildVariables)
        {
            start.Environment.Remove(variable);
        }

        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(s_timeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"eng/verify-consumer.sh ran longer than {s_timeout}:\n{File.ReadAllText(log)}");
        }

        return process.ExitCode;
    }
}
