using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Llama;

/// <summary>
/// Random weights of a given shape, made directly on the model's device in the model's dtype:
/// no CPU staging and no float32 copy of the whole model, so an 8B model in bfloat16 takes its
/// 16 GB on the GPU and nothing more.
/// </summary>
/// <remarks>
/// Projections and embeddings are drawn from N(0, <see cref="StandardDeviation"/>) (the init
/// transformers uses for Llama), norm weights are 1. With these, activations stay small through
/// every layer, so bfloat16 runs stay finite and the timings are those of real weights: no kernel
/// here depends on the values.
/// </remarks>
internal sealed class RandomWeightSource : ILlamaWeightSource, IDisposable
{
    public const double StandardDeviation = 0.02;

    private readonly ScalarType _dtype;
    private readonly Device _device;
    private readonly Generator? _generator;

    public RandomWeightSource(ScalarType dtype, Device device, int seed)
    {
        _dtype = dtype;
        _device = device;
        if (device.type == DeviceType.CPU)
        {
            _generator = new Generator((ulong)seed, device);
        }
        else
        {
            // TorchSharp's Generator is CPU-only; seed the device's default generator instead.
            torch.cuda.manual_seed(seed);
        }
    }

    public Tensor Read(string name, long[] shape)
    {
        if (name.EndsWith("norm.weight", StringComparison.Ordinal))
        {
            return ones(shape, _dtype, _device);
        }

        var weight = empty(shape, _dtype, _device);
        weight.normal_(0, StandardDeviation, _generator);
        return weight;
    }

    public void Dispose() => _generator?.Dispose();
}
