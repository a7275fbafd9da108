using BenchmarkDotNet.Running;
using BlockAttention.Runtime;

// TorchSharp's native loader fix must be in place before the first TorchSharp call, in the
// host process and in every benchmark process BenchmarkDotNet starts (each runs this Main).
TorchSharpNativeLibrary.EnsureRegistered();
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
