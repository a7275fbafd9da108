using BlockAttention.Llama;
using BlockAttention.Tests.Fixtures;
using BlockAttention.Training.Data;

namespace BlockAttention.Tests.Cli;

public sealed class TrainingCommandTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("blockattn-train-").FullName;

    [Fact]
    public void Prepare_then_train_writes_a_checkpoint_that_generate_loads()
    {
        string input = Path.Combine(_folder, "in.jsonl");
        File.WriteAllLines(input, [
            """{"prompt": "P1\nP2\nQ?\n", "blocks": ["P1\n", "P2\n", "Q?\n<|assistant|>\n"], "response": "A1"}""",
            """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye?"}, {"role": "assistant", "content": "Bye"}]}""",
            """{"blocks": ["one two three four five six seven eight nine ten eleven twelve\n", "Q?\n"], "response": "no"}""",
        ]);
        string prepared = Path.Combine(_folder, "prepared.jsonl");
        var prepare = CliRun.Of("prepare", "--input", input, "--out", prepared, "--model", FixturePaths.Model("tiny-llama3"), "--max-length", "24");

        prepare.ExitCode.Should().Be(0, prepare.ToString());
        prepare.Stdout.Should().Contain("examples 4, samples 6 (3 block, 3 full), dropped 1 over 24 tokens");
        var samples = TrainingSampleFile.Read(prepared);
        samples.Should().HaveCount(6);
        samples.Should().OnlyContain(s => s.InputIds.Last() == 128001 && s.Labels.Last() == 128001);

        string output = Path.Combine(_folder, "out");
        var train = CliRun.Of("train", "--model", FixturePaths.Model("tiny-llama3"), "--data", prepared, "--out", output, "--steps", "2", "--batch", "2", "--log-every", "1");
        train.ExitCode.Should().Be(0, train.ToString());
        train.Lines.Should().Contain(l => l.StartsWith("step 2/2  loss ", StringComparison.Ordinal) && l.Contains("tok/s") && l.Contains("ETA"));
        using var model = LlamaModel.Load(output);
        model.Tokenizer.Should().NotBeNull("the tokenizer files travel with the checkpoint");
    }

    [Fact]
    public void Malformed_training_data_is_reported_with_its_line()
    {
        string input = Path.Combine(_folder, "bad.jsonl");
        File.WriteAllLines(input, ["""{"blocks": ["a"], "response": "b"}""", "{not json"]);
        var run = CliRun.Of("prepare", "--input", input, "--out", Path.Combine(_folder, "o.jsonl"), "--model", FixturePaths.Model("tiny-llama3"));
        run.ExitCode.Should().Be(2);
        run.Stderr.Should().Contain("line 2").And.Contain("not valid JSON");
    }

    [Fact]
    public void Train_rejects_a_thread_count_below_one()
    {
        var run = CliRun.Of("train", "--model", FixturePaths.Model("tiny-llama2"), "--data", Path.Combine(_folder, "none.jsonl"), "--out", Path.Combine(_folder, "o"), "--threads", "0");
        run.ExitCode.Should().Be(2, run.ToString());
        run.Stderr.Should().Contain("--threads must be at least 1, got 0");
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);
}
