using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using BlockAttention.Llama;
using BlockAttention.Runtime;

namespace BlockAttention.Extensions.AI.Tests;

internal static class TestSetup
{
    [ModuleInitializer]
    internal static void Initialize() => TorchSharpNativeLibrary.EnsureRegistered();
}

/// <summary>The fixture models (tests/fixtures), found by walking up from the test binaries, loaded once and shared.</summary>
internal static class Fixtures
{
    private static readonly ConcurrentDictionary<string, Lazy<LlamaModel>> s_models = new();

    public static string Root { get; } = FindRoot();

    public static string ModelPath(string name = "tiny-llama3") => Path.Combine(Root, name);

    public static LlamaModel Model(string name = "tiny-llama3") =>
        s_models.GetOrAdd(name, n => new Lazy<LlamaModel>(() => LlamaModel.Load(ModelPath(n)))).Value;

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
