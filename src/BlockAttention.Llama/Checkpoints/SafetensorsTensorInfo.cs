namespace BlockAttention.Llama.Checkpoints;

/// <summary>Where one tensor lives in a safetensors file and what it holds.</summary>
/// <param name="Name">The tensor name, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</param>
/// <param name="DType">The element type.</param>
/// <param name="Shape">The dimensions, outermost first (row-major); empty for a scalar.</param>
/// <param name="ByteOffset">The absolute position of the first byte in the file (header included).</param>
/// <param name="ByteLength">The number of bytes: <see cref="ElementCount"/> times the element size.</param>
/// <param name="ElementCount">The product of <see cref="Shape"/> (1 for a scalar).</param>
public sealed record SafetensorsTensorInfo(
    string Name,
    SafetensorsDType DType,
    IReadOnlyList<long> Shape,
    long ByteOffset,
    long ByteLength,
    long ElementCount);
