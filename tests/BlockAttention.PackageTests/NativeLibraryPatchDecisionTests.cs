using System.Text;
using BlockAttention.Runtime;

namespace BlockAttention.PackageTests;

/// <summary>
/// The loader fix's one decision, both ways, on any host: patch only when the host's libstdc++
/// lacks GLIBCXX_3.4.32, write only under the cache root, never change the original.
/// </summary>
public sealed class NativeLibraryPatchDecisionTests : IDisposable
{
    private const string Version = "GLIBCXX_3.4.32";

    // TorchSharp's bridge as NuGet delivered it, copied beside the test binaries.
    private static readonly string s_originalBridge = Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");

    private readonly string _cacheRoot = Path.Combine(Path.GetTempPath(), $"blockattention-native-test-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_cacheRoot))
        {
            Directory.Delete(_cacheRoot, recursive: true);
        }
    }

    [Fact]
    public void A_host_with_the_version_gets_no_copy_and_no_file_is_read_or_written()
    {
        // The original does not even exist: had the decision read it, this would throw.
        string missing = Path.Combine(_cacheRoot, "no-such-folder", "libLibTorchSharp.so");

        string? patched = TorchSharpNativeLibrary.PreparePatchedCopy(missing, hostHasRequiredVersion: () => true, _cacheRoot);

        patched.Should().BeNull();
        Directory.Exists(_cacheRoot).Should().BeFalse("nothing is written on a host that has the version");
    }

    [Fact]
    public void A_host_without_the_version_gets_a_copy_under_the_cache_root_that_differs_only_in_the_weak_flag()
    {
        byte[] original = File.ReadAllBytes(s_originalBridge);

        string? patched = TorchSharpNativeLibrary.PreparePatchedCopy(s_originalBridge, hostHasRequiredVersion: () => false, _cacheRoot);

        patched.Should().NotBeNull();
        Path.GetFullPath(patched!).Should().StartWith(Path.GetFullPath(_cacheRoot) + Path.DirectorySeparatorChar);
        byte[] copy = File.ReadAllBytes(patched!);
        ElfVersionNeeds.Read(copy).Single(r => r.Version == Version).IsWeak.Should().BeTrue();
        original.Zip(copy).Count(pair => pair.First != pair.Second).Should().Be(1, "only the flag bit changes");
        File.ReadAllBytes(s_originalBridge).Should().Equal(original, "the original is only read");
    }

    [Fact]
    public void A_copy_already_there_is_reused_not_rewritten()
    {
        string first = TorchSharpNativeLibrary.PreparePatchedCopy(s_originalBridge, () => false, _cacheRoot)!;
        var written = File.GetLastWriteTimeUtc(first);
        File.SetLastWriteTimeUtc(first, written.AddHours(-1));

        string second = TorchSharpNativeLibrary.PreparePatchedCopy(s_originalBridge, () => false, _cacheRoot)!;

        second.Should().Be(first);
        File.GetLastWriteTimeUtc(second).Should().Be(written.AddHours(-1));
        Directory.GetFiles(Path.GetDirectoryName(first)!).Should().ContainSingle("no temporary file is left behind");
    }

    [Fact]
    public void The_host_probe_agrees_with_the_libstdcxx_this_process_has_loaded()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        // The probe loads libstdc++.so.6 (if the runtime had not already), so it is mapped now; a
        // library that defines a symbol version carries its name in its dynamic string table.
        bool probed = TorchSharpNativeLibrary.HostLibStdCxxHasRequiredVersion();
        string libstdcxx = File.ReadLines("/proc/self/maps")
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(fields => fields.Length >= 6 && Path.GetFileName(fields[5]).StartsWith("libstdc++.so", StringComparison.Ordinal))
            .Select(fields => fields[5])
            .First();
        bool defines = File.ReadAllBytes(libstdcxx).AsSpan().IndexOf(Encoding.ASCII.GetBytes(Version + "\0")) >= 0;

        probed.Should().Be(defines, $"{libstdcxx} {(defines ? "defines" : "lacks")} {Version}");
    }
}
