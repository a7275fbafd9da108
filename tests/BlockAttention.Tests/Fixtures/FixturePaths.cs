namespace BlockAttention.Tests.Fixtures;

/// <summary>Locates the reference fixtures copied into the repository (<c>tests/fixtures</c>).</summary>
internal static class FixturePaths
{
    public static string Root { get; } = FindRoot();

    public static string Model(string name) => Path.Combine(Root, name);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "fixtures");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"tests/fixtures not found above {AppContext.BaseDirectory}");
    }
}
