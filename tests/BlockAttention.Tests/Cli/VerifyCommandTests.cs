using System.Text.Json.Nodes;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Tests.Checkpoints;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Cli;

/// <summary><c>blockattn verify</c> in-process: the fixture models pass, a corrupted reference fails, bad input is exit 2.</summary>
public class VerifyCommandTests
{
    [Theory]
    [InlineData("tiny-llama3", new[] { "rag", "long" }, false)]
    [InlineData("tiny-llama2", new[] { "synthetic", "two_blocks" }, true)]
    public void Every_case_passes_in_both_modes(string model, string[] cases, bool viaSession)
    {
        string folder = FixturePaths.Model(model);
        string[] args = ["verify", "--model", folder, "--golden", folder];
        var run = CliRun.Of(viaSession ? [.. args, "--session"] : args);

        run.ExitCode.Should().Be(0, run.ToString());
        foreach (string name in cases)
        {
            foreach (string check in (string[])["full", "block"])
            {
                run.Lines.Should().ContainSingle(l => l.StartsWith("PASS") && Words(l).Take(3).SequenceEqual(new[] { "PASS", name, check }), run.ToString());
            }
        }

        run.Lines.Should().NotContain(l => l.StartsWith("FAIL"));
        run.Lines.Should().Contain(l => l.StartsWith("summary PASS"));
        run.Lines.Should().Contain(l => l.StartsWith("rule    float32: |logit diff| <= 1e-03"));
    }

    [Fact]
    public void A_corrupted_reference_fails_exactly_the_checks_it_touches()
    {
        using var golden = new TempDirectory();
        string model = FixturePaths.Model("tiny-llama2");
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "golden.json")))!;
        // two_blocks: the reference margin at steps 0..2 is large, so step 2 must agree; alter it.
        var greedy = json["cases"]![1]!["block_greedy"]!.AsArray();
        json["cases"]![1]!["name"]!.GetValue<string>().Should().Be("two_blocks");
        greedy[2] = (greedy[2]!.GetValue<int>() + 1) % 320;
        File.WriteAllText(golden.File("golden.json"), json.ToJsonString());
        File.Copy(Path.Combine(model, "golden.safetensors"), golden.File("golden.safetensors"));
        AddToFirstFloat(golden.File("golden.safetensors"), "synthetic.full.logits", 0.5f);

        var run = CliRun.Of("verify", "--model", model, "--golden", golden.Path);

        run.ExitCode.Should().Be(1, run.ToString());
        var failed = run.Lines.Where(l => l.StartsWith("FAIL")).ToList();
        failed.Should().HaveCount(2, run.ToString());
        failed[0].Should().MatchRegex(@"^FAIL\s+synthetic\s+full\s+logits max\|diff\| 5\.\d\de-01 > 1\.0e-03");
        failed[1].Should().MatchRegex(@"^FAIL\s+two_blocks\s+block\s+.*greedy 2/3 agree: step 2: expected \d+, got \d+");
        run.Lines.Should().Contain(l => l.StartsWith("summary FAIL: 3 of 5 checks passed, 2 failed"));
    }

    [Fact]
    public void A_malformed_golden_file_is_exit_2_naming_the_file_and_key()
    {
        using var golden = new TempDirectory();
        string model = FixturePaths.Model("tiny-llama2");
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "golden.json")))!;
        json["cases"]![0]!["full_margins"]!.AsArray().RemoveAt(0);
        File.WriteAllText(golden.File("golden.json"), json.ToJsonString());
        File.Copy(Path.Combine(model, "golden.safetensors"), golden.File("golden.safetensors"));

        var run = CliRun.Of("verify", "--model", model, "--golden", golden.Path);

        run.ExitCode.Should().Be(2, run.ToString());
        run.Stderr.Should().Contain($"{golden.File("golden.json")}: cases[0].full_margins: has 15 numbers, but full_greedy has 16 tokens");
    }

    [Fact]
    public void A_missing_reference_tensor_is_exit_2_naming_it()
    {
        using var golden = new TempDirectory();
        string model = FixturePaths.Model("tiny-llama2");
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(model, "golden.json")))!;
        json["cases"]![0]!["name"] = "renamed";
        File.WriteAllText(golden.File("golden.json"), json.ToJsonString());
        File.Copy(Path.Combine(model, "golden.safetensors"), golden.File("golden.safetensors"));

        var run = CliRun.Of("verify", "--model", model, "--golden", golden.Path, "--mode", "full");

        run.ExitCode.Should().Be(2, run.ToString());
        run.Stderr.Should().Contain($"{golden.File("golden.safetensors")}: renamed.full.logits: tensor missing");
    }

    [Theory]
    [InlineData(new[] { "verify", "--golden", "x" }, "'verify' needs --model")]
    [InlineData(new[] { "verify", "--model", "x", "--golden", "x", "--mode", "half" }, "--mode must be one of full, block, both")]
    [InlineData(new[] { "verify", "--model", "x", "--golden", "x", "--dtype", "float16" }, "--dtype must be one of float32, bfloat16")]
    [InlineData(new[] { "verify", "--model", "x", "--golden", "x", "--tolerance", "1" }, "'verify' has no option --tolerance")]
    public void Bad_usage_is_exit_2_with_the_usage_text(string[] args, string message)
    {
        var run = CliRun.Of(args);

        run.ExitCode.Should().Be(2, run.ToString());
        run.Stderr.Should().Contain(message).And.Contain("blockattn verify   --model DIR");
        run.Stdout.Should().BeEmpty();
    }

    [Fact]
    public void Missing_folders_are_exit_2_naming_them()
    {
        string fixture = FixturePaths.Model("tiny-llama2");
        string missing = Path.Combine(fixture, "no-such-folder");

        var noGolden = CliRun.Of("verify", "--model", fixture, "--golden", missing);
        var noModel = CliRun.Of("verify", "--model", missing, "--golden", fixture);

        noGolden.ExitCode.Should().Be(2);
        noGolden.Stderr.Should().Contain($"golden folder not found: {missing}");
        noModel.ExitCode.Should().Be(2);
        noModel.Stderr.Should().Contain($"model folder not found: {missing}");
    }

    [Fact]
    public void Cuda_without_cuda_is_exit_2_with_a_clear_message()
    {
        if (TorchSharp.torch.cuda.is_available())
        {
            return; // the message is for machines without CUDA
        }

        string fixture = FixturePaths.Model("tiny-llama2");
        var run = CliRun.Of("verify", "--model", fixture, "--golden", fixture, "--device", "cuda");

        run.ExitCode.Should().Be(2, run.ToString());
        run.Stderr.Should().Contain("--device cuda: CUDA is not available");
    }

    [Fact]
    public void Help_describes_both_tolerance_rules()
    {
        var run = CliRun.Of("verify", "--help");

        run.ExitCode.Should().Be(0);
        run.Stdout.Should().Contain("max |diff| <= 1e-03 (1e-02 for the case named 'long')")
            .And.Contain("0.15 x max(1, max |reference logit|)")
            .And.Contain("reference margin is >= 2 x that limit");
    }

    private static IEnumerable<string> Words(string line) => line.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Adds <paramref name="delta"/> to the first element of a float32 tensor in a safetensors file, in place.</summary>
    private static void AddToFirstFloat(string path, string tensor, float delta)
    {
        long offset;
        using (var file = SafetensorsFile.Open(path))
        {
            offset = file.GetInfo(tensor).ByteOffset;
        }

        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        var bytes = new byte[4];
        stream.Position = offset;
        stream.ReadExactly(bytes);
        BitConverter.GetBytes(BitConverter.ToSingle(bytes) + delta).CopyTo(bytes, 0);
        stream.Position = offset;
        stream.Write(bytes);
    }
}
