using static TorchSharp.torch;

namespace BlockAttention.Llama;

/// <summary>Where weights come from: a checkpoint on disk, or random values for benchmarks.</summary>
internal interface ILlamaWeightSource
{
    /// <summary>Reads the tensor <paramref name="name"/>, checks it has <paramref name="shape"/>, and returns it in the model's dtype on its device.</summary>
    Tensor Read(string name, long[] shape);
}
