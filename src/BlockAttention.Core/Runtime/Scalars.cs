using TorchSharp;

namespace BlockAttention.Runtime;

/// <summary>
/// Scalars for TorchSharp operations that outlive every call they are passed to.
/// </summary>
/// <remarks>
/// A .NET number passed where TorchSharp takes a <see cref="Scalar"/> becomes a temporary native
/// scalar with a finalizer, and the operation hands libtorch only its raw pointer. Once the pointer
/// is read the temporary is unreachable, so a garbage collection during the native call may free
/// it while libtorch reads it (seen as a garbage scalar in a comparison under parallel load). The
/// constants here are static, hence never collected; a value known only at run time is made with
/// <see cref="Of(double)"/> and disposed by the caller after the call (<c>using</c>), which keeps
/// it alive until then.
/// </remarks>
internal static class Scalars
{
    public static Scalar One { get; } = 1.ToScalar();

    public static Scalar MinusOne { get; } = (-1).ToScalar();

    public static Scalar NegativeInfinity { get; } = float.NegativeInfinity.ToScalar();

    public static Scalar NaN { get; } = float.NaN.ToScalar();

    /// <summary>A scalar the caller disposes once the operation that reads it has returned.</summary>
    public static Scalar Of(double value) => value.ToScalar();

    /// <summary>A scalar the caller disposes once the operation that reads it has returned.</summary>
    public static Scalar Of(long value) => value.ToScalar();

    /// <summary>
    /// <c>torch.arange(start, stop, step)</c> with its bounds held as scalars that stay alive
    /// through the call (TorchSharp's overloads take <see cref="Scalar"/>s, so plain numbers would
    /// become collectable temporaries).
    /// </summary>
    public static torch.Tensor Arange(long start, long stop, long step = 1, torch.ScalarType dtype = torch.ScalarType.Int64, torch.Device? device = null)
    {
        using var first = Of(start);
        using var end = Of(stop);
        using var stride = Of(step);
        return torch.arange(first, end, stride, dtype, device);
    }
}
