using BlockAttention.IO;
using BlockAttention.Tests.Checkpoints;

namespace BlockAttention.Tests.Inputs;

/// <summary>The one bounded reader: regular files only, never blocking on a pipe, never past its limit.</summary>
public sealed class InputFileTests : IDisposable
{
    private readonly TempDirectory _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void A_fifo_is_refused_at_once_and_named()
    {
        string path = _folder.File("config.json");
        SpecialFiles.MakeFifo(path);

        InputFileException? error = null;
        SpecialFiles.WithinSeconds(10, () => error = Catch(() => InputFile.ReadAllBytes(path, 1000, "config.json")));

        error!.FilePath.Should().Be(path);
        error.Message.Should().Contain(path).And.Contain("named pipe").And.Contain("not a regular file");
    }

    [Theory]
    [InlineData("/dev/zero", "character device")]
    [InlineData("/dev/urandom", "character device")]
    [InlineData("/tmp", "directory")]
    public void A_link_to_a_device_or_a_folder_is_refused(string target, string described)
    {
        string path = _folder.File("tokenizer.json");
        SpecialFiles.Link(path, target);

        InputFileException? error = null;
        SpecialFiles.WithinSeconds(10, () => error = Catch(() => InputFile.ReadAllBytes(path, 1000, "tokenizer.json")));

        error!.Message.Should().Contain(path).And.Contain(described);
    }

    [Fact]
    public void OpenRegular_refuses_a_fifo_without_blocking()
    {
        string path = _folder.File("model.safetensors");
        SpecialFiles.MakeFifo(path);

        InputFileException? error = null;
        SpecialFiles.WithinSeconds(10, () => error = Catch(() => InputFile.OpenRegular(path, "safetensors file").Dispose()));

        error!.Message.Should().Contain("named pipe");
    }

    [Fact]
    public void A_file_of_exactly_the_limit_is_read_and_one_byte_more_is_refused()
    {
        string path = _folder.File("blocks.json");
        byte[] content = [.. Enumerable.Range(0, 100).Select(i => (byte)i)];
        File.WriteAllBytes(path, content);

        InputFile.ReadAllBytes(path, 100, "blocks file").Should().Equal(content);
        var error = Catch(() => InputFile.ReadAllBytes(path, 99, "blocks file", "the option Xyz"));
        error.Message.Should().Contain(path).And.Contain("99").And.Contain("the option Xyz");
    }

    [Fact]
    public void A_file_that_reports_no_size_is_still_read_only_up_to_the_limit()
    {
        // /proc files report a size of 0 and are read to their end, which the limit must still bound.
        byte[] whole = InputFile.ReadAllBytes("/proc/self/status", 1 << 20, "status file");
        whole.Length.Should().BeGreaterThan(10);

        var error = Catch(() => InputFile.ReadAllBytes("/proc/self/status", 10, "status file"));
        error.Message.Should().Contain("more than 10");
    }

    [Fact]
    public void A_missing_file_is_file_not_found()
    {
        string path = _folder.File("absent.json");

        var act = () => InputFile.ReadAllBytes(path, 10, "config.json");

        act.Should().Throw<FileNotFoundException>().Where(e => e.Message.Contains(path));
    }

    private static InputFileException Catch(Action action)
    {
        try
        {
            action();
        }
        catch (InputFileException e)
        {
            return e;
        }

        throw new Xunit.Sdk.XunitException("expected an InputFileException");
    }
}
