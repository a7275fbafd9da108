using Xunit.Abstractions;

namespace BlockAttention.PackageTests;

/// <summary>
/// The packages as a consumer gets them: packed, referenced from a local feed by a fresh console app,
/// run; and the blockattn tool installed from the same feed and run.
/// </summary>
[Collection(RepositoryBuilds.Name)]
public class ConsumerPackageTests(ITestOutputHelper output)
{
    // About 3 minutes alone on 2 cores (most of it packing and installing the tool's libtorch); far more while other test assemblies compete for them.
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(15);

    [Fact]
    public async Task A_fresh_console_app_referencing_the_packages_loads_TorchSharp_and_runs_the_fixture_model()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // the script and its libtorch-cpu-linux-x64 backend are Linux x64 only
        }

        var (exitCode, text) = await Shell.RunAsync("bash eng/verify-consumer.sh", s_timeout);
        output.WriteLine(text);

        exitCode.Should().Be(0, "the script failed:\n{0}", text);
        text.TrimEnd().Split('\n')[^1].Should().StartWith("verify-consumer: OK");
    }
}
