using Xunit.Abstractions;

namespace BlockAttention.PackageTests;

/// <summary>
/// The packages as a consumer gets them: packed, referenced from a local feed by a fresh console app
/// and a fresh ASP.NET Core app (AddBlockAttention + IChatClient, with its own tests), run; and the
/// blockattn tool installed from the same feed and run (eng/verify-consumer.sh).
/// </summary>
[Collection(RepositoryBuilds.Name)]
public class ConsumerPackageTests(ITestOutputHelper output)
{
    // About 3 minutes alone on 2 cores (most of it packing and installing the tool's libtorch); far more while other test assemblies compete for them.
    private static readonly TimeSpan s_timeout = TimeSpan.FromMinutes(15);

    [Fact]
    public async Task Fresh_apps_referencing_the_packages_load_TorchSharp_run_the_fixture_model_and_serve_chat_with_reuse()
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
