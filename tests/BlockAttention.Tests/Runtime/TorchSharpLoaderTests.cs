using BlockAttention.Runtime;
using TorchSharp;

namespace BlockAttention.Tests.Runtime;

public class TorchSharpLoaderTests
{
    private static string OriginalBridge => Path.Combine(AppContext.BaseDirectory, "libLibTorchSharp.so");

    [Fact]
    public void Bridge_requires_GLIBCXX_3_4_32_strongly_as_shipped()
    {
        var requirements = ElfVersionNeeds.Read(File.ReadAllBytes(OriginalBridge));

        requirements.Should().ContainSingle(r => r.Version == "GLIBCXX_3.4.32")
            .Which.Should().Match<ElfVersionNeeds.Requirement>(r => r.File == "libstdc++.so.6" && !r.IsWeak);
    }

    [Fact]
    public void MarkWeak_sets_only_the_weak_flag_of_that_one_requirement()
    {
        byte[] original = File.ReadAllBytes(OriginalBridge);
        byte[] patched = (byte[])original.Clone();

        ElfVersionNeeds.MarkWeak(patched, "libstdc++.so.6", "GLIBCXX_3.4.32").Should().BeTrue();

        var before = ElfVersionNeeds.Read(original);
        var after = ElfVersionNeeds.Read(patched);
        after.Should().HaveCount(before.Count);
        for (int i = 0; i < before.Count; i++)
        {
            bool target = before[i].Version == "GLIBCXX_3.4.32";
            after[i].IsWeak.Should().Be(target || before[i].IsWeak, $"only {before[i].Version} should change");
        }

        int changedBytes = original.Zip(patched).Count(pair => pair.First != pair.Second);
        changedBytes.Should().Be(1, "VER_FLG_WEAK is one bit of a two-byte flags field");
    }

    [Fact]
    public void MarkWeak_returns_false_and_changes_nothing_for_a_version_not_required()
    {
        byte[] original = File.ReadAllBytes(OriginalBridge);
        byte[] copy = (byte[])original.Clone();

        ElfVersionNeeds.MarkWeak(copy, "libstdc++.so.6", "GLIBCXX_9.9.9").Should().BeFalse();

        copy.Should().Equal(original);
    }

    [Fact]
    public void Reading_a_file_that_is_not_ELF_fails_clearly()
    {
        var act = () => ElfVersionNeeds.Read("not an elf file at all, just text....................................."u8);

        act.Should().Throw<InvalidDataException>().WithMessage("*not an ELF file*");
    }

    [Fact]
    public void TorchSharp_runs_and_the_patch_is_applied_only_when_the_host_lacks_the_version()
    {
        using var sum = torch.arange(4, dtype: torch.float32).sum();
        sum.item<float>().Should().Be(6f);

        if (TorchSharpNativeLibrary.HostLibStdCxxHasRequiredVersion())
        {
            TorchSharpNativeLibrary.PatchedCopyPath.Should().BeNull("a host with GLIBCXX_3.4.32 loads the original bridge");
        }
        else
        {
            string patched = TorchSharpNativeLibrary.PatchedCopyPath!;
            patched.Should().NotBeNull();
            patched.Should().NotStartWith(AppContext.BaseDirectory, "the application folder is never written");
            ElfVersionNeeds.Read(File.ReadAllBytes(patched)).Single(r => r.Version == "GLIBCXX_3.4.32").IsWeak.Should().BeTrue();
        }

        // The shipped file stays as NuGet delivered it.
        ElfVersionNeeds.Read(File.ReadAllBytes(OriginalBridge)).Single(r => r.Version == "GLIBCXX_3.4.32").IsWeak.Should().BeFalse();
    }
}
