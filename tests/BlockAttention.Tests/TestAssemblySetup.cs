using System.Runtime.CompilerServices;
using BlockAttention.Runtime;

namespace BlockAttention.Tests;

internal static class TestAssemblySetup
{
    // Some tests call TorchSharp before any BlockAttention type; register the loader fix first,
    // exactly as the README tells such consumers to.
    [ModuleInitializer]
    internal static void Initialize() => TorchSharpNativeLibrary.EnsureRegistered();
}
