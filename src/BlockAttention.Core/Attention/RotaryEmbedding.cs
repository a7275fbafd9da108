using BlockAttention.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Attention;

/// <summary>
/// Rotary position embedding (RoPE) with the half-split layout of Llama checkpoints: dimension
/// <c>i</c> of the first half of a head pairs with dimension <c>i</c> of the second half.
/// </summary>
/// <remarks>
/// Angles are <c>position * inverseFrequency</c> in float32, and cos/sin are taken in float32,
/// exactly as Hugging Face transformers does. Rotations compose, which is what Block-Attention
/// relies on: a key rotated for local position <c>j</c> and then rotated by the angle of
/// <c>offset</c> equals the key rotated for position <c>offset + j</c>.
/// </remarks>
public sealed class RotaryEmbedding : IDisposable
{
    private readonly float[] _inverseFrequencies;
    private readonly Lock _tableLock = new();
    private readonly Dictionary<string, (Tensor Cos, Tensor Sin)> _tables = [];
    private bool _disposed;

    /// <summary>Creates the embedding from the inverse frequencies of one half of a head.</summary>
    public RotaryEmbedding(float[] inverseFrequencies)
    {
        ArgumentNullException.ThrowIfNull(inverseFrequencies);
        if (inverseFrequencies.Length == 0)
        {
            throw new ArgumentException("at least one frequency is needed", nameof(inverseFrequencies));
        }

        _inverseFrequencies = (float[])inverseFrequencies.Clone();
    }

    /// <summary>The head dimension this embedding rotates (twice the number of frequencies).</summary>
    public int HeadDim => _inverseFrequencies.Length * 2;

    /// <summary>The inverse frequencies, one per pair of dimensions.</summary>
    public IReadOnlyList<float> InverseFrequencies => _inverseFrequencies;

    /// <summary>Plain RoPE: <c>inv_freq[i] = theta^(-2i/d)</c>.</summary>
    public static RotaryEmbedding Default(double theta, int headDim) => new(BaseFrequencies(theta, headDim));

    /// <summary>
    /// Llama 3.1's frequency scaling: high frequencies are kept, low ones divided by
    /// <paramref name="factor"/>, and the band between interpolated smoothly.
    /// </summary>
    public static RotaryEmbedding Llama3(double theta, int headDim, double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions)
    {
        if (factor <= 0 || lowFreqFactor <= 0 || highFreqFactor <= lowFreqFactor || originalMaxPositions <= 0)
        {
            throw new ArgumentException(
                $"invalid llama3 rope scaling: factor {factor}, low_freq_factor {lowFreqFactor}, high_freq_factor {highFreqFactor}, original_max_position_embeddings {originalMaxPositions}");
        }

        float[] frequencies = BaseFrequencies(theta, headDim);
        // Computed in float32 like the reference, so that the frequencies match it bit for bit.
        float lowFreqWavelength = (float)(originalMaxPositions / lowFreqFactor);
        float highFreqWavelength = (float)(originalMaxPositions / highFreqFactor);
        for (int i = 0; i < frequencies.Length; i++)
        {
            float frequency = frequencies[i];
            float wavelength = 2 * MathF.PI / frequency;
            if (wavelength < highFreqWavelength)
            {
                continue;
            }

            if (wavelength > lowFreqWavelength)
            {
                frequencies[i] = frequency / (float)factor;
                continue;
            }

            float smooth = ((float)originalMaxPositions / wavelength - (float)lowFreqFactor) / (float)(highFreqFactor - lowFreqFactor);
            frequencies[i] = (1 - smooth) * frequency / (float)factor + smooth * frequency;
        }

        return new RotaryEmbedding(frequencies);
    }

    /// <summary>
    /// The rotation for positions <c>start .. start+count-1</c>: cos and signed sin,
    /// <c>[count, 1, headDim]</c>, ready to broadcast over the heads of <c>[count, heads, headDim]</c>.
    /// Computed in float32 and, for another <paramref name="dtype"/>, rounded to it, exactly as
    /// transformers prepares the rotation of a forward pass's queries and keys (the rotation of a
    /// bf16 model's forward then runs in bf16, like the reference's). Re-encoding cached keys
    /// uses float32 angles instead (see <see cref="AnglesAt"/>). Slices of a cached table: do
    /// not modify them; disposing them is allowed.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The embedding was disposed.</exception>
    public RotaryAngles Angles(long start, long count, Device device, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        // Sliced under the lock: another thread may replace (grow) or dispose the table, and a
        // view, once made, keeps its storage alive on its own.
        lock (_tableLock)
        {
            var (cos, signedSin) = Table(start + count, device, dtype);
            using var cosRows = cos.narrow(0, start, count);
            using var sinRows = signedSin.narrow(0, start, count);
            return new RotaryAngles(cosRows.unsqueeze(1), sinRows.unsqueeze(1));
        }
    }

    /// <summary>
    /// The rotation by a different angle for each element of <paramref name="positions"/>
    /// (int64 on <paramref name="device"/>): float32 cos and signed sin, <c>[positions, headDim]</c>,
    /// gathered from the cached table with no host-to-device copy of angles.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The embedding was disposed.</exception>
    public RotaryAngles AnglesAt(Tensor positions, long maxPosition, Device device)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxPosition);
        lock (_tableLock)
        {
            var (cos, signedSin) = Table(maxPosition + 1, device, ScalarType.Float32);
            return new RotaryAngles(cos.index_select(0, positions), signedSin.index_select(0, positions));
        }
    }

    /// <summary>
    /// Rotates keys by <paramref name="offset"/> positions: the same angle for every position, so
    /// keys cached for positions <c>0..n-1</c> (<c>[..., n, headDim]</c>) become the keys for
    /// <c>offset..offset+n-1</c>. Computed in float32, returned in the keys' dtype.
    /// </summary>
    public Tensor RotateBy(Tensor keys, long offset)
    {
        using var scope = NewDisposeScope();
        var angles = AnglesFor(tensor(new float[] { offset }, ScalarType.Float32));
        var rotation = new RotaryAngles(angles.cos().to(keys.device), SignedSin(angles).to(keys.device));
        return rotation.Apply(keys).MoveToOuterDisposeScope();
    }

    /// <summary>The cos/sin table of at least <paramref name="length"/> positions. Called under the table lock.</summary>
    private (Tensor Cos, Tensor Sin) Table(long length, Device device, ScalarType dtype)
    {
        string key = $"{device}/{dtype}";
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_tables.TryGetValue(key, out var table) && table.Cos.shape[0] >= length)
        {
            return table;
        }

        // Grow to the next power of two so that a growing prompt rebuilds the table rarely.
        long size = Math.Max(256, (long)BitOperationsRoundUp(length));
        using var scope = NewDisposeScope();
        var positions = Scalars.Arange(0, size, dtype: ScalarType.Float32);
        var angles = AnglesFor(positions);
        var cos = angles.cos().to(dtype, device).DetachFromDisposeScope();
        var sin = SignedSin(angles).to(dtype, device).DetachFromDisposeScope();
        // A request in flight may hold slices of the old table: views keep their storage alive
        // in libtorch, so releasing our handles here is safe (slices are made under the lock).
        if (_tables.TryGetValue(key, out var old))
        {
            old.Cos.Dispose();
            old.Sin.Dispose();
        }

        _tables[key] = (cos, sin);
        return (cos, sin);
    }

    /// <summary>
    /// sin with the sign of <c>rotate_half</c> folded in: <c>[-sin, +sin]</c> over the two halves,
    /// so that <c>rotate_half(x) * sin == swap_halves(x) * signedSin</c> exactly (a negation is exact).
    /// </summary>
    private static Tensor SignedSin(Tensor angles)
    {
        using var scope = NewDisposeScope();
        var sin = angles.sin();
        long half = sin.shape[^1] / 2;
        return cat([sin.narrow(-1, 0, half).neg(), sin.narrow(-1, half, half)], -1).MoveToOuterDisposeScope();
    }

    /// <summary>float32 angles <c>[positions, headDim]</c>: each position times each frequency, the halves repeated.</summary>
    private Tensor AnglesFor(Tensor positions)
    {
        using var scope = NewDisposeScope();
        var frequencies = tensor(_inverseFrequencies, ScalarType.Float32);
        var half = positions.unsqueeze(1).mul(frequencies.unsqueeze(0));
        return cat([half, half], 1).MoveToOuterDisposeScope();
    }

    private static float[] BaseFrequencies(double theta, int headDim)
    {
        if (theta <= 0 || headDim <= 0 || headDim % 2 != 0)
        {
            throw new ArgumentException($"rope needs theta > 0 and an even head dimension; got theta {theta}, head_dim {headDim}");
        }

        // inv_freq = 1 / theta^(arange(0, d, 2) / d), with the reference's float32 torch ops so
        // that the frequencies agree with it to the bit.
        using var scope = NewDisposeScope();
        using var dimension = Scalars.Of(headDim);
        using var thetaScalar = Scalars.Of(theta);
        var exponents = Scalars.Arange(0, headDim, 2).to(ScalarType.Float32).div(dimension);
        var frequencies = full(exponents.shape, thetaScalar, dtype: ScalarType.Float32).pow(exponents).reciprocal();
        return frequencies.data<float>().ToArray();
    }

    /// <summary>Releases the cached cos/sin tables.</summary>
    public void Dispose()
    {
        lock (_tableLock)
        {
            _disposed = true;
            foreach (var (cos, sin) in _tables.Values)
            {
                cos.Dispose();
                sin.Dispose();
            }

            _tables.Clear();
        }
    }

    private static ulong BitOperationsRoundUp(long value) => System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)value);
}
