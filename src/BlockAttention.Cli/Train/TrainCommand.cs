using System.Globalization;
using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Training;
using BlockAttention.Training.Data;
using BlockAttention.Training.Modeling;
using static TorchSharp.torch;

namespace BlockAttention.Cli.Train;

/// <summary><c>blockattn train</c>: fine-tunes a checkpoint (or a preset shape from scratch) on prepared samples.</summary>
internal static class TrainCommand
{
    public const string Help = """
        blockattn train (--model DIR | --preset NAME) --data FILE.jsonl --out DIR [--steps N] [--batch B] [--micro-batch M]
                        [--lr 2e-5] [--warmup 0.03] [--weight-decay 0] [--max-grad-norm 1]
                        [--lora-rank R] [--lora-alpha 2R] [--lora-targets q_proj,k_proj,v_proj,o_proj]
                        [--eval-data FILE.jsonl] [--eval-every N] [--save-every N] [--log-every N]
                        [--device cpu|cuda[:N]] [--dtype float32|bfloat16] [--save-dtype float32|bfloat16] [--seed S]
                        [--threads N]

        FILE.jsonl is the output of 'blockattn prepare'. Each step accumulates the gradients of
        --batch samples (each with its own block or causal mask; --micro-batch of them, default 8,
        padded into one forward pass) and applies AdamW with linear warm-up and cosine decay.
        --lora-rank R trains rank-R adapters on the --lora-targets projections (any of q_proj,
        k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) instead of every weight, scaled by
        --lora-alpha / R; the saved checkpoint holds them merged into the weights. DIR receives a Hugging Face checkpoint (config.json,
        model.safetensors, the tokenizer files) that 'blockattn generate --model DIR' and
        transformers load, plus the optimizer state: run the same command again to resume.
        Prints step, loss per response token, learning rate, gradient norm, tokens/s and ETA.
        --threads N sets libtorch's CPU threads (default: one per core); on a machine that runs
        other work, a small model trains more steadily with 1 (its operations are too small to share out).
        """;

    private static string Describe(TrainingProgress p)
    {
        string eval = p.EvalLoss is { } loss ? string.Create(CultureInfo.InvariantCulture, $"  eval-loss {loss:F4}") : "";
        return string.Create(CultureInfo.InvariantCulture,
            $"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:E2}  grad-norm {p.GradNorm:F3}  {p.TokensPerSecond:F0} tok/s  ETA {p.Remaining:hh\\:mm\\:ss}{eval}");
    }

    public static Verb Verb { get; } = new("train", """
        (--model DIR | --preset NAME) --data FILE.jsonl --out DIR [--steps N] [--batch B] [--lr LR] [--lora-rank R]
        [--eval-data FILE.jsonl] [--device cpu|cuda] [--dtype float32|bfloat16]
        """, Help, (commandLine, stdout, _, cancellationToken) => Task.Run(() => Run(commandLine, stdout, cancellationToken), cancellationToken));

    public static int Run(CommandLine commandLine, TextWriter stdout, CancellationToken cancellationToken = default)
    {
        commandLine.RejectUnknown("model", "preset", "data", "out", "steps", "batch", "micro-batch", "lora-rank", "lora-alpha", "lora-targets", "lr", "warmup", "weight-decay", "max-grad-norm",
            "eval-data", "eval-every", "save-every", "log-every", "device", "dtype", "save-dtype", "seed", "threads");
        string data = commandLine.Required("data");
        string output = commandLine.Required("out");
        string device = commandLine.Optional("device") ?? "cpu";
        var options = new TrainerOptions
        {
            Steps = commandLine.OptionalInt("steps", 100),
            BatchSize = commandLine.OptionalInt("batch", 8),
            MicroBatchSize = commandLine.OptionalInt("micro-batch", 8),
            LearningRate = commandLine.OptionalDouble("lr", 2e-5),
            WarmupRatio = commandLine.OptionalDouble("warmup", 0.03),
            WeightDecay = commandLine.OptionalDouble("weight-decay", 0),
            MaxGradNorm = commandLine.OptionalDouble("max-grad-norm", 1),
            EvalEvery = commandLine.OptionalInt("eval-every", 0),
            SaveEvery = commandLine.OptionalInt("save-every", 0),
            LogEvery = commandLine.OptionalInt("log-every", 10),
            Seed = commandLine.OptionalInt("seed", 42),
            ComputeDType = commandLine.Choice("dtype", "float32", "float32", "bfloat16") == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32,
            SaveDType = commandLine.Choice("save-dtype", "float32", "float32", "bfloat16") == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32,
        };
        if (commandLine.Optional("lora-rank") is not null || commandLine.Optional("lora-alpha") is not null || commandLine.Optional("lora-targets") is not null)
        {
            int rank = commandLine.OptionalInt("lora-rank", 8);
            options.Lora = new LoraOptions
            {
                Rank = rank,
                Alpha = commandLine.OptionalDouble("lora-alpha", 2.0 * rank),
                Targets = commandLine.Optional("lora-targets") is { } targets
                    ? [.. targets.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)]
                    : new LoraOptions().Targets,
                Seed = options.Seed,
            };
        }

        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }

        if (commandLine.Optional("threads") is not null)
        {
            int threads = commandLine.OptionalInt("threads", 1);
            if (threads < 1)
            {
                throw new UsageException($"--threads must be at least 1, got {threads}");
            }

            set_num_threads(threads);
        }

        try
        {
            var samples = TrainingSampleFile.Read(data);
            var evaluation = commandLine.Optional("eval-data") is { } evalPath ? TrainingSampleFile.Read(evalPath) : null;
            using var model = commandLine.Optional("preset") is { } preset
                ? TrainableLlama.CreateRandom(LlamaPresets.Get(preset), options.Seed, device)
                : TrainableLlama.Load(commandLine.Required("model"), device);
            stdout.WriteLine($"training on {samples.Count} samples ({samples.Sum(s => (long)s.Length)} tokens) for {options.Steps} steps of {options.BatchSize}");
            new Trainer(model, options).Train(samples, evaluation, output, p => stdout.WriteLine(Describe(p)), cancellationToken);
            stdout.WriteLine($"saved {output}");
            return ExitCodes.Success;
        }
        catch (Exception e) when (e is TrainingDataException or CheckpointFormatException or FileNotFoundException or DirectoryNotFoundException)
        {
            throw new InputException(e.Message, e);
        }
    }
}
