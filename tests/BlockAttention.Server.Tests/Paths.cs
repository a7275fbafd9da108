namespace BlockAttention.Server.Tests;

/// <summary>Finds the repository's files from the test binaries.</summary>
internal static class Paths
{
    public static string Root { get; } = FindRoot();

    public static string TinyModel => Path.Combine(Root, "tests", "fixtures", "tiny-llama3");

    private static readonly Lazy<BlockAttention.Llama.LlamaModel> s_model = new(() => BlockAttention.Llama.LlamaModel.Load(TinyModel));

    /// <summary>The tiny model loaded once in the test process (immutable, shared), as an oracle beside the server's own copy.</summary>
    public static BlockAttention.Llama.LlamaModel Model => s_model.Value;

    private static string FindRoot()
    {
        for (DirectoryInfo? directory = new(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "BlockAttention.sln")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException($"No BlockAttention.sln above '{AppContext.BaseDirectory}'.");
    }
}
