using static TorchSharp.torch;

namespace BlockAttention.Cli.Verify;

/// <summary>
/// How close to the reference is close enough, by the dtype the model runs in. The reference was
/// computed in float32, so float32 uses the fixtures README's limits as they are; bfloat16 rounds
/// every activation to 8 significant bits, so its limits scale with the size of the numbers.
/// </summary>
internal sealed record VerificationTolerance
{
    // float32: the fixtures README's limits, exactly.
    public const double Float32Logits = 1e-3;
    public const double Float32LongLogits = 1e-2;
    public const string LongCaseName = "long";
    public const double Float32Margin = 1e-2;
    public const double Float32Tensors = 1e-4;

    // bfloat16: limits relative to the size of the numbers, max(1, the largest |reference value|).
    // One bf16 rounding is up to 2^-9 relative, but attention scores and activations are rounded at
    // every layer and errors compound: on the fixture models (random weights, so near-flat logits)
    // the observed logit error reaches 8% of the scale (tiny-llama3 'long', block mode), layer-0
    // keys and values 0.5%. The limits leave about twice that.
    public const double BFloat16LogitsRelative = 0.15;
    public const double BFloat16TensorsRelative = 0.03;

    private VerificationTolerance(string dtype, bool relative)
    {
        DType = dtype;
        IsRelative = relative;
    }

    public static VerificationTolerance Float32 { get; } = new("float32", relative: false);

    public static VerificationTolerance BFloat16 { get; } = new("bfloat16", relative: true);

    public string DType { get; }

    private bool IsRelative { get; }

    public static VerificationTolerance For(ScalarType dtype) => dtype == ScalarType.BFloat16 ? BFloat16 : Float32;

    /// <summary>The most a logit may differ from the reference; <paramref name="scale"/> is the largest |reference logit|.</summary>
    public double LogitLimit(string caseName, double scale) => IsRelative
        ? BFloat16LogitsRelative * Math.Max(1, scale)
        : caseName == LongCaseName ? Float32LongLogits : Float32Logits;

    /// <summary>
    /// The smallest reference margin at which greedy tokens must agree. In bfloat16, twice the
    /// logit limit: logits each within the limit cannot swap two tokens further apart than that.
    /// </summary>
    public double MarginThreshold(double logitLimit) => IsRelative ? 2 * logitLimit : Float32Margin;

    /// <summary>The most a key or value may differ from the reference; <paramref name="scale"/> is the largest |reference value|.</summary>
    public double TensorLimit(double scale) => IsRelative ? BFloat16TensorsRelative * Math.Max(1, scale) : Float32Tensors;

    /// <summary>The rule in words, printed before the results.</summary>
    public string Describe() => IsRelative
        ? $"bfloat16: |logit diff| <= {BFloat16LogitsRelative:0.###} x max(1, max|reference logit|) per case and mode; " +
          $"greedy tokens compared while the reference margin >= 2 x that limit; keys/values within {BFloat16TensorsRelative:0.###} x max(1, max|reference|)"
        : $"float32: |logit diff| <= {Float32Logits:0e+00} ({Float32LongLogits:0e+00} for case '{LongCaseName}'); " +
          $"greedy tokens compared while the reference margin >= {Float32Margin:0e+00}; keys/values within {Float32Tensors:0e+00}";
}
