namespace BlockAttention.PackageTests;

/// <summary>
/// <c>samples/</c> holds short programs a newcomer learns from: each has a README saying what it shows
/// and how to run it, and is small enough to read in one sitting. Tools belong in <c>src/</c>.
/// </summary>
public class SamplesTests
{
    /// <summary>Lines of C# (blank lines not counted) that a sample may have: "about 300".</summary>
    private const int MaxLines = 300;

    [Fact]
    public void Every_sample_has_a_README_and_at_most_about_300_lines_of_code_and_none_is_a_tool()
    {
        var problems = new List<string>();
        foreach (string project in SampleProjects())
        {
            string folder = Path.GetDirectoryName(project)!;
            string name = Path.GetRelativePath(RepositoryPaths.Root, folder);
            if (!File.Exists(Path.Combine(folder, "README.md")))
            {
                problems.Add($"{name} has no README.md saying what it shows and how to run it");
            }

            int lines = SourceFiles(folder).Sum(file => File.ReadLines(file).Count(line => line.Trim().Length > 0));
            if (lines > MaxLines)
            {
                problems.Add($"{name} has {lines} lines of C# (blank lines not counted); a sample stays within {MaxLines}: move reusable code into the library, or the program into src/");
            }

            if (File.ReadAllText(project).Contains("<PackAsTool>true</PackAsTool>", StringComparison.OrdinalIgnoreCase))
            {
                problems.Add($"{name} is packed as a tool; tools live in src/");
            }
        }

        problems.Should().BeEmpty();
    }

    [Fact]
    public void The_line_count_sees_a_long_program()
    {
        // The count the rule above relies on, on files it must flag: blank lines do not count, obj/ and bin/ are not sources.
        string folder = Path.Combine(Path.GetTempPath(), $"blockattention-sample-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(folder, "obj"));
        try
        {
            File.WriteAllLines(Path.Combine(folder, "Program.cs"), Enumerable.Range(0, MaxLines + 1).SelectMany(i => new[] { $"// line {i}", "" }));
            File.WriteAllLines(Path.Combine(folder, "obj", "Generated.cs"), Enumerable.Repeat("// generated", 1000));

            SourceFiles(folder).Select(Path.GetFileName).Should().Equal("Program.cs");
            SourceFiles(folder).Sum(file => File.ReadLines(file).Count(line => line.Trim().Length > 0)).Should().Be(MaxLines + 1);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static IEnumerable<string> SampleProjects()
    {
        string samples = Path.Combine(RepositoryPaths.Root, "samples");
        return Directory.Exists(samples) ? Directory.EnumerateFiles(samples, "*.csproj", SearchOption.AllDirectories) : [];
    }

    private static IEnumerable<string> SourceFiles(string folder) =>
        Directory.EnumerateFiles(folder, "*.cs", SearchOption.AllDirectories)
            .Where(file => !Path.GetRelativePath(folder, file).Split(Path.DirectorySeparatorChar).Any(part => part is "obj" or "bin"))
            .Order();
}
