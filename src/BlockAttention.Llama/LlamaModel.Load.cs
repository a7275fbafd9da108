using System.Diagnostics;
using System.IO.Hashing;
using System.Text;
using BlockAttention.Attention;
using BlockAttention.IO;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Llama.Tokenization;
using BlockAttention.Models;
using BlockAttention.Runtime;
using BlockAttention.Text;
using Microsoft.Extensions.Logging;
using static TorchSharp.torch;

namespace BlockAttention.Llama;

public sealed partial class LlamaModel
{
    /// <summary>
    /// Loads a Hugging Face checkpoint folder: <c>config.json</c>, <c>model.safetensors</c> (or
    /// sharded with <c>model.safetensors.index.json</c>) and <c>tokenizer.json</c>.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">A required file is missing.</exception>
    /// <exception cref="CheckpointFormatException">A file is malformed, a tensor is missing or has the wrong shape, or the config asks for something unsupported.</exception>
    public static LlamaModel Load(string directory, LlamaLoadOptions? options = null)
    {
        options ??= new LlamaLoadOptions();
        var dtype = ValidateDType(options.DType);
        var device = ParseDevice(options.Device);
        var clock = Stopwatch.StartNew();
        var limits = options.FileLimits ?? throw new ArgumentException($"{nameof(LlamaLoadOptions)}.{nameof(LlamaLoadOptions.FileLimits)} is null.", nameof(options));
        limits.Validate();
        using var checkpoint = CheckpointFolder.Open(directory, limits);
        var config = checkpoint.Config;
        string configPath = Path.Combine(checkpoint.DirectoryPath, CheckpointFolder.ConfigFileName);
        if (config.AttentionBias || config.MlpBias)
        {
            // Llama checkpoints have no biases; the forward pass does not implement them, so refuse rather than ignore them.
            throw new CheckpointFormatException(
                $"{configPath}: {(config.AttentionBias ? "attention_bias" : "mlp_bias")} is true, but Llama projections with biases are not supported",
                configPath, config.AttentionBias ? "attention_bias" : "mlp_bias");
        }

        // Every size the config names is checked against the tensors present before anything is allocated.
        CheckpointShapeCheck.Verify(config, checkpoint);

        // A checkpoint without tokenizer.json still runs prompts given as token ids.
        var tokenizer = checkpoint.TokenizerPath is { } tokenizerPath ? LlamaTokenizer.FromFile(tokenizerPath, options.Tokenizer, limits) : null;

        var fingerprint = new XxHash128();
        fingerprint.Append(InputFile.ReadAllBytes(configPath, limits.ConfigJsonBytes, CheckpointFolder.ConfigFileName));
        string? chatTemplate = checkpoint.TokenizerConfigPath is { } tokenizerConfigPath ? TokenizerConfigReader.ReadChatTemplate(tokenizerConfigPath, limits) : null;
        var logger = options.Logger;
        if (logger is not null)
        {
            long bytes = checkpoint.WeightFiles.Sum(f => new FileInfo(f).Length);
            LogReading(logger, checkpoint.DirectoryPath, checkpoint.WeightFiles.Count, bytes, config.NumHiddenLayers, dtype, device.ToString());
            LogTokenizer(logger, checkpoint.TokenizerPath ?? "(none: prompts must be token ids)", chatTemplate is not null);
        }

        var reader = new CheckpointTensorReader(checkpoint, dtype, device, fingerprint);
        var model = Build(config, reader, tokenizer, dtype, device, fingerprint, options.Attention, chatTemplate, options.Progress);
        if (logger is not null)
        {
            LogLoaded(logger, checkpoint.DirectoryPath, clock.Elapsed.TotalMilliseconds, model.Info.KvBytesPerToken, model.Info.Fingerprint);
            if (TorchSharpNativeLibrary.PatchedCopyPath is { } patched)
            {
                LogPatchedBridge(logger, patched);
            }
        }

        return model;
    }

    internal static LlamaModel Build(LlamaConfig config, ILlamaWeightSource weights, ITextTokenizer? tokenizer, ScalarType dtype, Device device, XxHash128 fingerprint,
        AttentionImplementation attention, string? chatTemplate = null, IProgress<ModelLoadProgress>? progress = null)
    {
        var shape = ShapeOf(config);
        // No capacity from the config: a huge layer count must fail on its first missing tensor, not here.
        var layers = new List<LlamaDecoderLayer>();
        var owned = new List<IDisposable>();
        try
        {
            using var inference = inference_mode();
            var embedding = Track(weights.Read("model.embed_tokens.weight", [shape.Vocab, shape.Hidden]), owned);
            for (int i = 0; i < shape.Layers; i++)
            {
                layers.Add(LoadLayer(weights, shape, $"model.layers.{i}."));
                progress?.Report(new ModelLoadProgress(i + 1, shape.Layers));
            }

            var finalNorm = Track(weights.Read("model.norm.weight", [shape.Hidden]), owned);
            Tensor? lmHead = config.TieWordEmbeddings ? null : Track(weights.Read("lm_head.weight", [shape.Vocab, shape.Hidden]), owned);
            var rotary = CreateRotary(config);
            string id = Convert.ToHexStringLower(fingerprint.GetCurrentHash());
            var info = new ModelInfo("llama", shape.Layers, shape.KvHeads, shape.HeadDim, shape.Vocab, config.MaxPositionEmbeddings,
                dtype, device, config.EosTokenIds, $"llama-{id}-{dtype}-{device.type}".ToLowerInvariant())
            {
                ChatTemplate = chatTemplate,
            };
            return new LlamaModel(shape, embedding, [.. layers], finalNorm, lmHead, rotary, tokenizer, info, attention);
        }
        catch
        {
            foreach (var layer in layers)
            {
                layer.Dispose();
            }

            foreach (var item in owned)
            {
                item.Dispose();
            }

            throw;
        }
    }

    private static LlamaDecoderLayer LoadLayer(ILlamaWeightSource weights, LlamaShape shape, string prefix)
    {
        long q = shape.Heads * shape.HeadDim, kv = shape.KvHeads * shape.HeadDim;
        using var scope = NewDisposeScope();
        var inputNorm = weights.Read(prefix + "input_layernorm.weight", [shape.Hidden]);
        var qkv = cat([
            weights.Read(prefix + "self_attn.q_proj.weight", [q, shape.Hidden]),
            weights.Read(prefix + "self_attn.k_proj.weight", [kv, shape.Hidden]),
            weights.Read(prefix + "self_attn.v_proj.weight", [kv, shape.Hidden])], 0);
        var output = weights.Read(prefix + "self_attn.o_proj.weight", [shape.Hidden, q]);
        var postNorm = weights.Read(prefix + "post_attention_layernorm.weight", [shape.Hidden]);
        var gateUp = cat([
            weights.Read(prefix + "mlp.gate_proj.weight", [shape.Intermediate, shape.Hidden]),
            weights.Read(prefix + "mlp.up_proj.weight", [shape.Intermediate, shape.Hidden])], 0);
        var down = weights.Read(prefix + "mlp.down_proj.weight", [shape.Hidden, shape.Intermediate]);
        return new LlamaDecoderLayer(shape,
            inputNorm.DetachFromDisposeScope(), qkv.DetachFromDisposeScope(), output.DetachFromDisposeScope(),
            postNorm.DetachFromDisposeScope(), gateUp.DetachFromDisposeScope(), down.DetachFromDisposeScope());
    }

    internal static LlamaShape ShapeOf(LlamaConfig config)
    {
        if (config.NumAttentionHeads % config.NumKeyValueHeads != 0)
        {
            throw new ArgumentException($"num_attention_heads {config.NumAttentionHeads} is not a multiple of num_key_value_heads {config.NumKeyValueHeads}");
        }

        return new LlamaShape(config.HiddenSize, config.NumAttentionHeads, config.NumKeyValueHeads, config.HeadDim,
            config.IntermediateSize, config.NumHiddenLayers, config.VocabSize, config.RmsNormEps);
    }

    internal static RotaryEmbedding CreateRotary(LlamaConfig config)
    {
        var rope = config.Rope;
        return rope.Type switch
        {
            RopeType.Default => RotaryEmbedding.Default(rope.Theta, config.HeadDim),
            RopeType.Llama3 => RotaryEmbedding.Llama3(rope.Theta, config.HeadDim, rope.Factor!.Value, rope.LowFreqFactor!.Value,
                rope.HighFreqFactor!.Value, rope.OriginalMaxPositionEmbeddings!.Value),
            _ => throw new NotSupportedException($"rope_type {rope.Type} is not supported"),
        };
    }

    /// <summary>The devices <see cref="LlamaLoadOptions.Device"/> accepts, as messages list them.</summary>
    internal const string AcceptedDevices = "cpu, cuda or cuda:N (N = 0, 1, ...)";

    internal static Device ParseDevice(string? device)
    {
        // Checked here rather than left to TorchSharp, whose message for "banana" is "Requested value
        // 'BANANA' was not found" and names neither the option nor what it accepts.
        string text = device?.Trim() ?? "";
        bool isCpu = text.Equals("cpu", StringComparison.OrdinalIgnoreCase);
        bool isCuda = text.Equals("cuda", StringComparison.OrdinalIgnoreCase);
        int index = 0;
        bool isIndexedCuda = text.StartsWith("cuda:", StringComparison.OrdinalIgnoreCase)
            && text.Length > 5 && text.AsSpan(5).IndexOfAnyExceptInRange('0', '9') < 0
            && int.TryParse(text.AsSpan(5), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out index);
        if (!isCpu && !isCuda && !isIndexedCuda)
        {
            throw new ArgumentException(
                $"{nameof(LlamaLoadOptions)}.{nameof(LlamaLoadOptions.Device)} is '{device}'; the accepted devices are {AcceptedDevices}.", nameof(device));
        }

        if (isCpu)
        {
            return CPU;
        }

        if (!TorchSharp.torch.cuda.is_available())
        {
            throw new ArgumentException($"device '{device}' was asked for, but CUDA is not available in this process", nameof(device));
        }

        int available = TorchSharp.torch.cuda.device_count();
        if (index >= available)
        {
            throw new ArgumentException($"device '{device}' was asked for, but this machine has {available} CUDA device(s)", nameof(device));
        }

        return isCuda ? CUDA : new Device(TorchSharp.DeviceType.CUDA, index);
    }

    private static ScalarType ValidateDType(ScalarType dtype) => dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16
        ? dtype
        : throw new ArgumentException($"dtype {dtype} is not supported; use Float32, BFloat16 or Float16");

    private static Tensor Track(Tensor tensor, List<IDisposable> owned)
    {
        owned.Add(tensor);
        return tensor;
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information,
        Message = "Loading {Folder}: {WeightFiles} weight file(s), {WeightBytes} bytes, {Layers} layers, as {DType} on {Device}")]
    private static partial void LogReading(ILogger logger, string folder, int weightFiles, long weightBytes, int layers, ScalarType dtype, string device);

    [LoggerMessage(EventId = 2, Level = LogLevel.Debug, Message = "Tokenizer: {Tokenizer}; chat template present: {HasChatTemplate}")]
    private static partial void LogTokenizer(ILogger logger, string tokenizer, bool hasChatTemplate);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information,
        Message = "Loaded {Folder} in {ElapsedMs:F0} ms; {KvBytesPerToken} bytes of KV cache per token; fingerprint {Fingerprint}")]
    private static partial void LogLoaded(ILogger logger, string folder, double elapsedMs, long kvBytesPerToken, string fingerprint);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information,
        Message = "TorchSharp's native bridge runs from BlockAttention's patched copy at {Path}: this system's libstdc++ lacks GLIBCXX_3.4.32")]
    private static partial void LogPatchedBridge(ILogger logger, string path);
}
