using System.Text.Json;
using BlockAttention.Tests.Checkpoints;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Cli;

/// <summary><c>blockattn generate</c> in-process on tiny-llama3 (it has the real Llama 3.1 tokenizer).</summary>
public class GenerateCommandTests
{
    private const string Rag = """
        {
          "passages": [
            {"title": "Paris", "text": "Paris is the capital and largest city of France."},
            {"title": "Berlin", "text": "Berlin is the capital of Germany."},
            {"title": "Rome", "text": "Rome is the capital of Italy."}
          ],
          "question": "What is the capital of France?"
        }
        """;

    private static readonly string[] s_fields =
    [
        "run", "runs", "mode", "text", "token_ids", "generated_tokens", "finish_reason", "ttft_ms", "total_ms", "tokens_per_second",
        "prompt_tokens", "computed_prompt_tokens", "local_blocks", "reused_blocks", "encoded_blocks", "store", "device", "dtype",
    ];

    [Fact]
    public void Json_prints_one_object_per_run_and_the_second_run_reuses_every_passage()
    {
        using var folder = new TempDirectory();
        File.WriteAllText(folder.File("rag.json"), Rag);

        var run = CliRun.Of("generate", "--model", FixturePaths.Model("tiny-llama3"), "--blocks", folder.File("rag.json"),
            "--max-new-tokens", "4", "--json", "--repeat", "2");

        run.ExitCode.Should().Be(0, run.ToString());
        run.Lines.Should().HaveCount(2, "--json prints exactly one JSON object per run and no streamed text");
        var runs = run.Lines.Select(line => JsonDocument.Parse(line).RootElement).ToList();
        foreach (var result in runs)
        {
            result.EnumerateObject().Select(p => p.Name).Should().BeEquivalentTo(s_fields);
            result.GetProperty("mode").GetString().Should().Be("block");
            result.GetProperty("local_blocks").GetInt32().Should().Be(4, "the instruction block and three passages");
            result.GetProperty("generated_tokens").GetInt32().Should().Be(result.GetProperty("token_ids").GetArrayLength()).And.BeInRange(1, 4);
            result.GetProperty("ttft_ms").GetDouble().Should().BePositive().And.BeLessThanOrEqualTo(result.GetProperty("total_ms").GetDouble());
            result.GetProperty("dtype").GetString().Should().Be("float32");
        }

        var (first, second) = (runs[0], runs[1]);
        first.GetProperty("encoded_blocks").GetInt32().Should().Be(4);
        first.GetProperty("computed_prompt_tokens").GetInt32().Should().Be(first.GetProperty("prompt_tokens").GetInt32());
        // Greedy, so reusing the cached passages must not change a single token.
        second.GetProperty("token_ids").ToString().Should().Be(first.GetProperty("token_ids").ToString());
        second.GetProperty("store").GetString().Should().Be("memory");
        second.GetProperty("reused_blocks").GetInt32().Should().Be(4, "the second run finds every passage in the store");
        second.GetProperty("encoded_blocks").GetInt32().Should().Be(0);
        // Only the final block went through the model.
        second.GetProperty("computed_prompt_tokens").GetInt32().Should().BeLessThan(first.GetProperty("computed_prompt_tokens").GetInt32());
    }

    [Fact]
    public void Streams_the_text_then_a_summary_line()
    {
        using var folder = new TempDirectory();
        File.WriteAllText(folder.File("blocks.json"), """{"blocks": ["Some context.\n", "Question: why?\nAnswer:"]}""");

        var run = CliRun.Of("generate", "--model", FixturePaths.Model("tiny-llama3"), "--blocks", folder.File("blocks.json"),
            "--max-new-tokens", "3", "--mode", "full", "--temperature", "0.7", "--seed", "1");

        run.ExitCode.Should().Be(0, run.ToString());
        // Full mode runs the prompt as one sequence: no block is encoded on its own.
        run.Lines[^1].Should().MatchRegex(
            @"^run 1/1: TTFT [\d.]+ ms \| total [\d.]+ ms \| [\d.]+ tokens/s \| [1-3] tokens \| blocks reused 0/1, encoded 0 \| " +
            @"prompt tokens computed (\d+) of \1 \| finish (length|end_of_sequence|stop_string) \| mode full, store \w+, float32 on cpu$");
    }

    [Theory]
    [InlineData(null, "blocks file not found")]
    [InlineData("[\"a\", ", "not valid JSON")]
    [InlineData("[]", "the top-level array is empty")]
    [InlineData("{\"blocks\": []}", "'blocks' is empty")]
    [InlineData("{\"blocks\": [\"a\", 3]}", "block 1 of 'blocks' is not a string")]
    [InlineData("{\"passages\": [{\"title\": \"t\"}], \"question\": \"q\"}", "passages[0].text is missing or not a string")]
    [InlineData("{\"passages\": [{\"title\": \"t\", \"text\": \"x\"}]}", "'question' is missing or not a string")]
    [InlineData("{\"prompt\": \"x\"}", "expected an array of block strings")]
    public void A_bad_blocks_file_is_exit_2_naming_the_file_and_the_problem(string? content, string problem)
    {
        using var folder = new TempDirectory();
        string path = folder.File("blocks.json");
        if (content is not null)
        {
            File.WriteAllText(path, content);
        }

        // The file is read before the model is loaded, so a bad one costs no load.
        var run = CliRun.Of("generate", "--model", FixturePaths.Model("tiny-llama3"), "--blocks", path);

        run.ExitCode.Should().Be(2, run.ToString());
        run.Stderr.Should().Contain(path).And.Contain(problem);
    }

    [Theory]
    [InlineData("--repeat", "0", "--repeat must be at least 1")]
    [InlineData("--top-p", "1.5", "TopP must be in (0, 1]")]
    [InlineData("--temperature", "hot", "--temperature expects a number")]
    [InlineData("--mode", "onepass!", "--mode must be one of block, full, onepass")]
    public void Bad_generation_options_are_exit_2(string option, string value, string message)
    {
        var run = CliRun.Of("generate", "--model", "x", "--blocks", "x", option, value);

        run.ExitCode.Should().Be(2, run.ToString());
        run.Stderr.Should().Contain(message);
    }
}
