using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace BlockAttention.Runtime;

internal static class ModuleInitializer
{
    /// <summary>
    /// Registers the TorchSharp loader fix as soon as this assembly is used, so that consumers
    /// need no set-up call before their first model load.
    /// </summary>
    [ModuleInitializer]
    [SuppressMessage("Usage", "CA2255", Justification = "The loader fix must be in place before TorchSharp initialises, with no call from the consumer.")]
    internal static void Initialize() => TorchSharpNativeLibrary.EnsureRegistered();
}
