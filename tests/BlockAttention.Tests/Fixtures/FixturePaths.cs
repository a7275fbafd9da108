namespace BlockAttention.Tests.Fixtures;

/// <summary>Finds the reference fixtures (<c>tests/fixtures</c>) from the test output folder.</summary>
internal static class FixturePaths
{
    /// <summary>The <c>tests/fixtures</c> folder: found by walking up from the test binaries, so tests run from any checkout.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The folder of one fixture model, e.g. <c>tiny-llama3</c>.</summary>
    public static string Model(string name) => Path.Combine(Root, name);

    private static string FindRoot()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            string candidate = Path.Combine(directory.FullName, "tests", "fixtures");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"No tests/fixtures folder above '{AppContext.BaseDirectory}'.");
    }
}
