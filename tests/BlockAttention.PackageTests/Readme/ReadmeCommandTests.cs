using Xunit.Abstractions;

namespace BlockAttention.PackageTests.Readme;

/// <summary>
/// Every command in the READMEs works from a clone of the repository: the cheap ones run as written,
/// the others name projects that exist and options their verbs know (<see cref="ReadmeCommandChecker"/>).
/// </summary>
[Collection(RepositoryBuilds.Name)]
public class ReadmeCommandTests(ITestOutputHelper output)
{
    private static readonly string[] s_readmes = ["README.md", "benchmarks/README.md"];

    [Fact]
    public async Task The_commands_of_the_READMEs_work_from_the_repository_root()
    {
        if (!OperatingSystem.IsLinux())
        {
            return; // the commands run the CLI on linux-x64 with libtorch-cpu-linux-x64
        }

        var commands = s_readmes
            .Concat(SampleReadmes())
            .SelectMany(file => ReadmeCommand.Parse(file, File.ReadAllText(Path.Combine(RepositoryPaths.Root, file))))
            .ToList();
        commands.Should().Contain(c => c.File == "README.md", "README.md has shell blocks of commands");

        var log = new List<string>();
        var problems = await new ReadmeCommandChecker(RepositoryPaths.Root, Shell.RunAsync).CheckAsync(commands, log);
        log.ForEach(output.WriteLine);

        problems.Should().BeEmpty();
        log.Should().Contain(line => line.StartsWith("ran ", StringComparison.Ordinal), "at least the README's first command runs");
    }

    [Fact]
    public async Task Wrong_paths_unknown_options_failing_runs_and_unknown_commands_are_problems()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        const string markdown = """
            Some text.

            ```sh
            # a comment line
            dotnet run --project samples/NoSuchSample -c Release -- --model tests/fixtures/tiny-llama3
            blockattn bench --preset smollm2-135m \
                --no-such-option 3
            blockattn tokenize --tokenizer tests/fixtures/tiny-llama3/no-such-tokenizer.json --text hi
            blockattn tokenize --tokenizer tests/fixtures/tiny-llama3/tokenizer.json --golden tests/fixtures
            make everything
            ```

            ```csharp
            dotnet run --project this/is/code/not/a/command
            ```
            """;
        var commands = ReadmeCommand.Parse("TEST.md", markdown);
        commands.Select(c => c.Line).Should().Equal(5, 6, 8, 9, 10);

        var problems = await new ReadmeCommandChecker(RepositoryPaths.Root, Shell.RunAsync).CheckAsync(commands, []);
        problems.ForEach(output.WriteLine);

        problems.Should().HaveCount(4);
        problems[0].Should().Contain("'samples/NoSuchSample' is not in the repository");
        problems[1].Should().Contain("does not know --no-such-option");
        // An input that is absent demotes a run to an options check; a present but wrong one runs and fails.
        problems[2].Should().Contain("tokenize --tokenizer tests/fixtures/tiny-llama3/tokenizer.json --golden tests/fixtures: exit code 2");
        problems[3].Should().Contain("make everything: no rule says how to check this command");
    }

    /// <summary>The README of every sample: each sample says in a few lines what it shows and how to run it.</summary>
    private static IEnumerable<string> SampleReadmes()
    {
        string samples = Path.Combine(RepositoryPaths.Root, "samples");
        return Directory.Exists(samples)
            ? Directory.EnumerateFiles(samples, "README.md", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(RepositoryPaths.Root, f)).Order()
            : [];
    }
}
