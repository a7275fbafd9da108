using BlockAttention.Llama.Checkpoints;
using static TorchSharp.torch;

namespace BlockAttention.Cli.Verify;

/// <summary>
/// A folder of reference outputs in the fixtures' format: <c>golden.json</c> (the cases) and
/// <c>golden.safetensors</c> (float32 logits and keys). It may be the model's own folder.
/// </summary>
internal sealed class GoldenSuite : IDisposable
{
    public const string CasesFileName = "golden.json";
    public const string TensorsFileName = "golden.safetensors";

    private readonly SafetensorsFile _tensors;

    private GoldenSuite(string directory, IReadOnlyList<GoldenCase> cases, SafetensorsFile tensors)
    {
        Directory = directory;
        Cases = cases;
        _tensors = tensors;
    }

    public string Directory { get; }

    public string CasesPath => Path.Combine(Directory, CasesFileName);

    public string TensorsPath => _tensors.Path;

    public IReadOnlyList<GoldenCase> Cases { get; }

    /// <summary>Reads and checks both files; every problem is an <see cref="InputException"/> naming the file and key.</summary>
    public static GoldenSuite Open(string directory)
    {
        if (!System.IO.Directory.Exists(directory))
        {
            throw new InputException($"golden folder not found: {directory}");
        }

        string casesPath = Path.Combine(directory, CasesFileName);
        string tensorsPath = Path.Combine(directory, TensorsFileName);
        foreach (string path in (ReadOnlySpan<string>)[casesPath, tensorsPath])
        {
            if (!File.Exists(path))
            {
                throw new InputException($"golden file not found: {path}");
            }
        }

        var cases = GoldenJsonReader.Read(casesPath);
        try
        {
            return new GoldenSuite(directory, cases, SafetensorsFile.Open(tensorsPath));
        }
        catch (IOException e)
        {
            // A malformed header (CheckpointFormatException), or not a regular file (InputFileException).
            throw new InputException(e.Message, e);
        }
    }

    public bool Contains(string name) => _tensors.Contains(name);

    /// <summary>
    /// Reads a float32 reference tensor onto the CPU, checking that it exists, is float32 and has
    /// <paramref name="shape"/> (a <c>-1</c> matches any size).
    /// </summary>
    public Tensor Read(string name, params long[] shape)
    {
        if (!_tensors.Contains(name))
        {
            throw new InputException($"{TensorsPath}: {name}: tensor missing");
        }

        var info = _tensors.GetInfo(name);
        if (info.DType != SafetensorsDType.F32)
        {
            throw new InputException($"{TensorsPath}: {name}: expected F32, got {info.DType}");
        }

        bool shapeMatches = info.Shape.Count == shape.Length && info.Shape.Zip(shape).All(p => p.Second < 0 || p.First == p.Second);
        if (!shapeMatches)
        {
            string expected = string.Join(", ", shape.Select(n => n < 0 ? "*" : n.ToString()));
            throw new InputException($"{TensorsPath}: {name}: expected shape [{expected}], got [{string.Join(", ", info.Shape)}]");
        }

        var result = empty([.. info.Shape], ScalarType.Float32);
        try
        {
            _tensors.ReadInto(name, result.bytes);
            return result;
        }
        catch (CheckpointFormatException e)
        {
            result.Dispose();
            throw new InputException(e.Message, e);
        }
    }

    public void Dispose() => _tensors.Dispose();
}
