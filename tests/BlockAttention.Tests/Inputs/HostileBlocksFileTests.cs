using System.Text;
using BlockAttention.Cli;
using BlockAttention.Cli.Generate;
using BlockAttention.Tests.Checkpoints;
using BlockAttention.Tests.Cli;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Inputs;

/// <summary>The CLI's blocks file: a BOM is fine; pipes, devices, broken text and oversized files are bad input (exit 2) naming the file.</summary>
public sealed class HostileBlocksFileTests : IDisposable
{
    private readonly TempDirectory _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void A_byte_order_mark_is_accepted()
    {
        string path = _folder.File("blocks.json");
        File.WriteAllBytes(path, [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes("""["context", "question"]""")]);

        BlocksFile.Read(path).Blocks.Should().HaveCount(2);
    }

    [Theory]
    [InlineData("""["a", "\udc00"]""", "lone surrogate")]
    [InlineData("""{"passages": [{"title": "\ud800", "text": "x"}], "question": "q"}""", "lone surrogate")]
    [InlineData("""{"blocks": {"a": 1}}""", "not an array")]
    [InlineData("""{"passages": [], "question": "q"}""", "'passages' is empty")]
    public void Broken_text_and_wrong_kinds_are_input_errors_naming_the_file(string json, string message)
    {
        string path = _folder.File("blocks.json");
        File.WriteAllText(path, json);

        var act = () => BlocksFile.Read(path);

        act.Should().Throw<InputException>().Where(e => e.Message.Contains(path) && e.Message.Contains(message));
    }

    [Fact]
    public void An_oversized_file_is_refused_before_it_is_parsed()
    {
        string path = _folder.File("blocks.json");
        File.WriteAllText(path, "[\"" + new string('x', 200) + "\"]");

        var act = () => BlocksFile.Read(path, maxBytes: 100);

        act.Should().Throw<InputException>().Where(e => e.Message.Contains(path) && e.Message.Contains("limit of 100 bytes"));
    }

    [Theory]
    [InlineData("fifo")]
    [InlineData("/dev/zero")]
    [InlineData("/dev/urandom")]
    public void A_pipe_or_device_as_blocks_file_exits_2_at_once(string kind)
    {
        SpecialFiles.Replace(_folder, "blocks.json", kind);
        CliRun? run = null;

        SpecialFiles.WithinSeconds(30, () => run = CliRun.Of("generate", "--model", FixturePaths.Model("tiny-llama3"), "--blocks", _folder.File("blocks.json")));

        run!.ExitCode.Should().Be(ExitCodes.BadInput, run.ToString());
        run.Stderr.Should().Contain(_folder.File("blocks.json")).And.Contain("not a regular file").And.NotContain("unexpected");
    }
}
