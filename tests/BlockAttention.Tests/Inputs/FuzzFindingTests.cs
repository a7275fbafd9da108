using BlockAttention.Llama.Checkpoints;
using BlockAttention.Llama.Tokenization;
using BlockAttention.Tests.Checkpoints;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Inputs;

/// <summary>Inputs the AFL++ fuzzer found crashing the readers (tests/fixtures/fuzz-findings): each is now a documented refusal.</summary>
public sealed class FuzzFindingTests : IDisposable
{
    private static readonly string Findings = Path.Combine(FixturePaths.Root, "fuzz-findings");
    private readonly TempDirectory _folder = new();

    public void Dispose() => _folder.Dispose();

    public static TheoryData<string> SafetensorsFindings() => new(Directory.GetFiles(Path.Combine(Findings, "safetensors")).Select(Path.GetFileName)!);

    public static TheoryData<string> TokenizerFindings() => new(Directory.GetFiles(Path.Combine(Findings, "tokenizer")).Select(Path.GetFileName)!);

    [Theory]
    [MemberData(nameof(SafetensorsFindings))]
    public void A_safetensors_finding_is_refused_naming_the_file(string name)
    {
        string path = Path.Combine(Findings, "safetensors", name);

        var act = () => SafetensorsFile.Open(path).Dispose();

        act.Should().Throw<CheckpointFormatException>().Where(e => e.FilePath == path && e.Message.Contains(path));
    }

    [Theory]
    [MemberData(nameof(TokenizerFindings))]
    public void A_tokenizer_finding_is_refused_naming_the_file(string name)
    {
        // Copied alone into a folder: the finding is about tokenizer.json, not a config beside it.
        string path = _folder.File("tokenizer.json");
        File.Copy(Path.Combine(Findings, "tokenizer", name), path);

        var act = () => LlamaTokenizer.FromFile(path);

        act.Should().Throw<TokenizerFormatException>().Where(e => e.FilePath == path && e.Message.Contains(path));
    }
}
