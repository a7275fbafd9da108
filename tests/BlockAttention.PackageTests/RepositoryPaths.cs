namespace BlockAttention.PackageTests;

/// <summary>Finds the repository root from the test output folder, so tests run from any checkout.</summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "eng", "verify-consumer.sh")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException($"No eng/verify-consumer.sh above '{AppContext.BaseDirectory}'.");
    }
}
