namespace BlockAttention.Tests.Fixtures;

/// <summary>Locates <c>tests/fixtures</c> from the test binaries, wherever the repository is cloned.</summary>
internal static class FixturePaths
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    /// <summary>Gets the full path of <c>tests/fixtures</c>.</summary>
    public static string Root => s_root.Value;

    /// <summary>Gets the folder of one fixture model, such as <c>tiny-llama3</c>.</summary>
    public static string Model(string name) => Path.Combine(Root, name);

    private static string FindRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            string candidate = Path.Combine(directory.FullName, "tests", "fixtures");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"No tests/fixtures folder above {AppContext.BaseDirectory}.");
    }
}
