using BlockAttention.Llama;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Cli;

/// <summary>The options every model-running command shares: <c>--model DIR [--device cpu|cuda[:N]] [--dtype float32|bfloat16]</c>.</summary>
internal sealed record ModelOptions(string Directory, string Device, ScalarType DType)
{
    public static readonly string[] Names = ["model", "device", "dtype"];

    public string DTypeName => DType == ScalarType.BFloat16 ? "bfloat16" : "float32";

    public static ModelOptions Parse(CommandLine commandLine)
    {
        string directory = commandLine.Required("model");
        string device = commandLine.Optional("device") ?? "cpu";
        if (device != "cpu" && device != "cuda" && !(device.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(device.AsSpan(5), out int index) && index >= 0))
        {
            throw new UsageException($"--device must be cpu, cuda or cuda:N; got '{device}'");
        }

        string dtype = commandLine.Choice("dtype", "float32", "float32", "bfloat16");
        return new ModelOptions(directory, device, dtype == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32);
    }

    /// <summary>Loads the model; a missing folder, a malformed checkpoint or an unavailable device is an <see cref="InputException"/>.</summary>
    public LlamaModel Load()
    {
        if (!System.IO.Directory.Exists(Directory))
        {
            throw new InputException($"model folder not found: {Directory}");
        }

        if (Device != "cpu")
        {
            // Checked here, before any loading, so the message is about the device and nothing else.
            int available = torch.cuda.is_available() ? torch.cuda.device_count() : 0;
            int wanted = Device == "cuda" ? 0 : int.Parse(Device.AsSpan(5));
            if (wanted >= available)
            {
                throw new InputException(available == 0
                    ? $"--device {Device}: CUDA is not available (no CUDA device, or this build has only the CPU backend of libtorch)"
                    : $"--device {Device}: only {available} CUDA device(s) present");
            }
        }

        try
        {
            return LlamaModel.Load(Directory, new LlamaLoadOptions { Device = Device, DType = DType });
        }
        catch (Exception e) when (e is IOException or FormatException or ArgumentException or NotSupportedException)
        {
            // FileNotFound, DirectoryNotFound and CheckpointFormatException are IOExceptions; a bad
            // tokenizer.json is a FormatException. Their messages name the file.
            throw new InputException($"cannot load the model in {Directory}: {e.Message}", e);
        }
    }
}
