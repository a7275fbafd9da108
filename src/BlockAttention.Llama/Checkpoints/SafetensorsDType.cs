namespace BlockAttention.Llama.Checkpoints;

/// <summary>The element types this library reads from safetensors files.</summary>
/// <remarks>
/// Llama checkpoints store their weights in one of these. Integer and float64 tensors (quantized
/// checkpoints, optimizer state) are rejected when the file is opened rather than misread later.
/// </remarks>
public enum SafetensorsDType
{
    /// <summary>IEEE 754 binary32 (<c>F32</c>), 4 bytes, little-endian.</summary>
    F32,

    /// <summary>IEEE 754 binary16 (<c>F16</c>), 2 bytes, little-endian.</summary>
    F16,

    /// <summary>bfloat16 (<c>BF16</c>): the upper 16 bits of a binary32, 2 bytes, little-endian.</summary>
    BF16,
}

/// <summary>Helpers for <see cref="SafetensorsDType"/>.</summary>
public static class SafetensorsDTypeExtensions
{
    /// <summary>The size of one element in bytes.</summary>
    /// <param name="dtype">The element type.</param>
    /// <returns>4 for <see cref="SafetensorsDType.F32"/>, 2 for <see cref="SafetensorsDType.F16"/> and <see cref="SafetensorsDType.BF16"/>.</returns>
    public static int SizeInBytes(this SafetensorsDType dtype) => dtype switch
    {
        SafetensorsDType.F32 => 4,
        SafetensorsDType.F16 => 2,
        SafetensorsDType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    // The format spells dtypes in upper case ("F32", "BF16", "I64", ...).
    internal static bool TryParse(string text, out SafetensorsDType dtype)
    {
        // Exact, case-sensitive names: the format defines them in upper case and Enum.TryParse would
        // also accept numbers such as "1".
        switch (text)
        {
            case "F32": dtype = SafetensorsDType.F32; return true;
            case "F16": dtype = SafetensorsDType.F16; return true;
            case "BF16": dtype = SafetensorsDType.BF16; return true;
            default: dtype = default; return false;
        }
    }
}
