using System.Diagnostics;
using System.Globalization;
using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using static TorchSharp.torch;

namespace BlockAttention.Cli.Bench;

/// <summary>
/// <c>blockattn bench</c>: time to first token of full attention against Block-Attention, per
/// prompt length, on a preset with random weights or a checkpoint folder; prints a table and
/// writes JSON and markdown.
/// </summary>
internal static class BenchCommand
{
    public const string Help = """
        blockattn bench [--preset smollm2-135m|llama-3.2-1b|llama-3.1-8b | --model DIR]
                        [--device cpu|cuda] [--dtype float32|bfloat16] [--lengths 512,1024,2048,4096]
                        [--warmup N] [--repeats N] [--decode-tokens N] [--soak N] [--seed N]
                        [--out DIR] [--machine LABEL]
                        [--expect-speedup X] [--expect-reencode-share F] [--expect-block-ttft MS]
                        [--baseline FILE.json]
                        [--concurrency 1,4,16,64] [--arrival-rate R] [--requests N] [--max-batch N] [--step-threads N]
                        [--expect-batch-speedup X] [--check-exact]

        Times the first token of full attention against Block-Attention for each prompt length, on a
        preset with random weights (TTFT does not depend on weight values) or a checkpoint folder.
        Prints a table as it goes (progress on stderr, the final table on stdout) and writes
        bench-<model>-<device>.json and .md to --out.
        blockattn bench --stores [--store-dir DIR] [--redis HOST:PORT] [--preset ... | --model DIR] [--device ...]
                        [--dtype ...] [--lengths 4096] [--warmup N] [--repeats N] [--out DIR]

          Defaults: on cpu smollm2-135m, float32, lengths 512..4096; on cuda llama-3.1-8b, bfloat16,
          lengths 512..32768. --warmup 1, --repeats 3 on cpu and 5 on cuda (the CPU lengths then
          finish in well under 10 minutes on 2 cores), --decode-tokens 32, --out artifacts/bench.
          --soak N: N consecutive block requests at the longest length; checks that neither the
          resident set nor GPU memory grows.

        Many requests at once (--concurrency): for each level C, requests arrive as a Poisson
        process at --arrival-rate per second (default 20, seeded by --seed) and the client keeps at
        most C in flight; --requests N per level (default 2C, at least 8). Each request reuses the same
        passages (a warm store), asks its own question and decodes --decode-tokens tokens.
        --requests also takes one count per level (e.g. --concurrency 1,4,64 --requests 4,8,64). The same
        arrivals run against a batching session (MaxBatchSize --max-batch, default 16) and against a
        session that runs one request at a time; --step-threads N sets both sessions' CPU threads for
        their forward passes (default: libtorch's). Reported per level, for both: output tokens/s, TTFT
        and time per output token (p50, p95). With --concurrency the length sweep runs only when
        --lengths is given; the prompt length is the longest of --lengths (default 1024).

        Checks, each optional, judged at the longest length and printed PASS/FAIL:
          --expect-speedup X          full TTFT / block TTFT is at least X (e.g. 30)
          --expect-reencode-share F   re-encoding + assembly takes at most F of block TTFT
                                      (0.3 or 30%)
          --expect-block-ttft MS      block TTFT is at most MS milliseconds
          --expect-batch-speedup X    batched output throughput is at least X times one at a time,
                                      at the highest --concurrency level
          --check-exact               batching changes no request's tokens: every request of every
                                      level runs again alone on the batching session and its tokens
                                      must equal the batched run's (even requests greedy, odd ones
                                      sampled at temperature 0.8 with their own seed)
          --baseline FILE.json        full TTFT is no slower than FILE's at every length it lists:
                                      {"rows": [{"L": tokens, "full_ms": ms}, ...]}, e.g. measured
                                      with Hugging Face transformers on the same machine
        Exit code 0 when every check asked for passes (or none was asked for), 1 when one fails,
        2 for bad usage or input.
        --stores: TTFT with the passages from memory, from the file store (in --store-dir, default a
        temp folder), from Redis (when --redis is given) and encoded again, side by side, with the
        stored bytes per token and each store's fetch bandwidth; default length 4096.
        """;

    public static Verb Verb { get; } = new("bench", """
        [--preset smollm2-135m|llama-3.2-1b|llama-3.1-8b | --model DIR] [--device cpu|cuda]
        [--dtype float32|bfloat16] [--lengths 512,1024,...] [--repeats N] [--out DIR] [--soak N]
        [--expect-speedup X] [--expect-reencode-share F] [--expect-block-ttft MS] [--baseline FILE]
        [--stores [--store-dir DIR] [--redis HOST:PORT]]
        [--concurrency 1,4,16,64] [--arrival-rate R] [--requests N] [--max-batch N] [--step-threads N] [--expect-batch-speedup X] [--check-exact]
        """, Help, RunAsync);

    private static readonly string[] s_known =
    [
        "preset", "model", "device", "dtype", "lengths", "warmup", "repeats", "decode-tokens", "soak", "seed", "out", "machine",
        "expect-speedup", "expect-reencode-share", "expect-block-ttft", "baseline", "stores", "store-dir", "redis",
        "concurrency", "arrival-rate", "requests", "max-batch", "step-threads", "expect-batch-speedup", "check-exact",
    ];

    public static async Task<int> RunAsync(CommandLine commandLine, TextWriter stdout, TextWriter progress, CancellationToken cancellationToken)
    {
        commandLine.RejectUnknown(s_known);
        var options = Parse(commandLine);
        try
        {
            if (commandLine.Flag("stores"))
            {
                var storeOptions = commandLine.Optional("lengths") is null ? options with { Lengths = [4096] } : options;
                return await RunStoresAsync(storeOptions, commandLine.Optional("store-dir"), commandLine.Optional("redis"), stdout, progress)
                    .ConfigureAwait(false);
            }

            return await MeasureAsync(options, stdout, progress, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ArgumentException or FileNotFoundException or DirectoryNotFoundException or CheckpointFormatException)
        {
            // Bad input (no CUDA, a missing or malformed checkpoint), not bad usage: the message, without the usage text.
            throw new InputException(e.Message, e);
        }
    }

    private static async Task<int> MeasureAsync(BenchOptions options, TextWriter stdout, TextWriter progress, CancellationToken cancellationToken)
    {
        var total = Stopwatch.StartNew();
        var device = new Device(options.Device);
        double? loadAtStart = ProcessMemory.LoadAverage();
        var machine = MachineProbe.Describe(device, options.Machine);
        progress.WriteLine($"bench: {options.ModelName} on {options.Device} ({options.DType}), {machine.Label}; lengths {string.Join(',', options.Lengths)}" +
            (options.Concurrency.Count > 0 ? $"; concurrency {string.Join(',', options.Concurrency)} at {options.ConcurrencyLength} tokens" : ""));

        var config = options.Preset is not null
            ? LlamaPresets.Get(options.Preset)
            : LlamaConfig.Load(Path.Combine(options.ModelDirectory!, CheckpointFolder.ConfigFileName));
        int longest = Math.Max(options.Lengths.DefaultIfEmpty(0).Max(), options.Concurrency.Count > 0 ? options.ConcurrencyLength : 0);
        if (longest + options.DecodeTokens > config.MaxPositionEmbeddings)
        {
            throw new UsageException($"{longest} tokens plus {options.DecodeTokens} decoded exceed the model's {config.MaxPositionEmbeddings} positions");
        }

        var build = Stopwatch.StartNew();
        BlockAttention.Attention.Cuda.CudaKernels.Log = message => progress.WriteLine($"kernels: {message}");
        using var model = options.CreateModel();
        progress.WriteLine($"model ready in {build.Elapsed.TotalSeconds:F1} s ({Parameters(config) / 1e6:F0}M parameters)");

        var runner = new BenchRunner(model, options, progress, cancellationToken);
        var rows = new List<LengthResult>();
        var table = new List<string> { ReportWriter.ConsoleHeader() };
        // The header once, before the first row: each row follows its length's progress lines.
        progress.WriteLine(table[0]);
        foreach (int length in options.Lengths)
        {
            var row = await runner.RunAsync(length).ConfigureAwait(false);
            rows.Add(row);
            table.Add(ReportWriter.ConsoleRow(row));
            progress.WriteLine(table[^1]);
        }

        SoakResult? soak = options.Soak > 0 ? await runner.SoakAsync(longest, options.Soak).ConfigureAwait(false) : null;
        var concurrency = options.Concurrency.Count > 0
            ? await new ConcurrencyRunner(model, options, progress, cancellationToken).RunAsync(options.ConcurrencyLength).ConfigureAwait(false)
            : null;
        // On a GPU: eight requests at once over the same passages, to show what they hold in memory.
        ConcurrentResult? concurrent = device.type == TorchSharp.DeviceType.CUDA ? await runner.ConcurrentAsync(longest, 8).ConfigureAwait(false) : null;
        var checks = BenchExpectations.Evaluate(options, rows, soak, concurrency);
        var report = new BenchReport
        {
            Machine = machine with { LoadAverage = loadAtStart is double start && ProcessMemory.LoadAverage() is double end ? [start, end] : null },
            Date = DateTimeOffset.UtcNow,
            Model = options.ModelName,
            RandomWeights = options.Preset is not null,
            Device = options.Device,
            DType = options.DType.ToString().ToLowerInvariant(),
            Shape = Describe(config, model),
            Prompt = new PromptDescription(BenchPrompt.InstructionTokens, BenchPrompt.PassageTokens, BenchPrompt.FinalTokens),
            Warmup = options.Warmup,
            Repeats = options.Repeats,
            DecodeTokens = options.DecodeTokens,
            MemoryMethod = device.type == TorchSharp.DeviceType.CUDA
                ? "peak RSS is the process's VmHWM, reset per length through /proc/self/clear_refs; GPU MiB is the device's used memory after the length (CUDA driver cuMemGetInfo): PyTorch's caching-allocator reserve, the CUDA context and any other process. TorchSharp exposes no max_memory_allocated or empty_cache, so it is the process's high-water mark so far, not the length's own peak."
                : "peak RSS is the process's VmHWM (/proc/self/status), reset at the start of each length through /proc/self/clear_refs, so each row shows its own peak (model weights included).",
            Lengths = rows,
            Soak = soak,
            CachedBlocks = runner.ReadsBlocksInPlace ? ReportWriter.SegmentTable : "assembly",
            Concurrent = concurrent,
            ConcurrencyLevels = concurrency,
            Checks = checks,
            TotalSeconds = total.Elapsed.TotalSeconds,
        };

        ReportWriter.WriteFiles(report, options.OutDirectory, out string jsonPath, out string markdownPath);
        stdout.WriteLine();
        stdout.WriteLine($"{options.ModelName} on {options.Device} ({report.DType}), {machine.Label}; medians of {options.Repeats} runs after {options.Warmup} warm-up");
        foreach (string line in table)
        {
            stdout.WriteLine(line);
        }

        foreach (string line in ReportWriter.ConcurrencyLines(concurrency))
        {
            stdout.WriteLine(line);
        }

        if (soak is not null)
        {
            stdout.WriteLine($"soak: {soak.Requests} requests at {soak.Tokens} tokens, RSS {soak.RssAfterWarmupBytes >> 20} -> {soak.RssEndBytes >> 20} MiB after warm-up" +
                (soak.GpuEndBytes is long gpu ? $", GPU {soak.GpuAfterWarmupBytes >> 20} -> {gpu >> 20} MiB" : ""));
        }

        foreach (var check in checks)
        {
            stdout.WriteLine($"{(check.Passed ? "PASS" : "FAIL")} {check.Name}: {check.Detail}");
        }

        stdout.WriteLine($"wrote {jsonPath} and {markdownPath} ({total.Elapsed.TotalSeconds:F0} s)");
        return checks.All(c => c.Passed) ? ExitCodes.Success : ExitCodes.CheckFailed;
    }

    private static async Task<int> RunStoresAsync(BenchOptions options, string? storeDirectory, string? redis, TextWriter stdout, TextWriter progress)
    {
        var device = new Device(options.Device);
        var machine = MachineProbe.Describe(device, options.Machine);
        progress.WriteLine($"bench --stores: {options.ModelName} on {options.Device} ({options.DType}), {machine.Label}; lengths {string.Join(',', options.Lengths)}");
        using var model = options.CreateModel();
        var bench = new StoreBench(model, options, storeDirectory, redis, progress);
        Directory.CreateDirectory(options.OutDirectory);
        foreach (int length in options.Lengths)
        {
            var rows = await bench.RunAsync(length);
            string markdown = StoreBench.Markdown(length, options, machine.Label, bench.LastOthersShare, model.Info, rows);
            string name = $"stores-{options.ModelName}-{options.DeviceKind}-{length}";
            File.WriteAllText(Path.Combine(options.OutDirectory, name + ".md"), markdown);
            File.WriteAllText(Path.Combine(options.OutDirectory, name + ".json"), StoreBench.Json(length, options, machine.Label, bench.LastOthersShare, model.Info, rows));
            stdout.WriteLine(markdown);
        }

        return 0;
    }

    private static BenchOptions Parse(CommandLine commandLine)
    {
        string? preset = commandLine.Optional("preset");
        string? modelDirectory = commandLine.Optional("model");
        if (preset is not null && modelDirectory is not null)
        {
            throw new UsageException("'bench' takes --preset or --model, not both");
        }

        string device = commandLine.Optional("device") ?? "cpu";
        bool cuda = device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase);
        if (!cuda && !device.Equals("cpu", StringComparison.OrdinalIgnoreCase))
        {
            throw new UsageException($"--device must be cpu, cuda or cuda:N, got '{device}'");
        }

        if (modelDirectory is null)
        {
            preset ??= cuda ? LlamaPresets.Llama31_8B : LlamaPresets.SmolLM2_135M;
            if (!LlamaPresets.TryGet(preset, out _))
            {
                throw new UsageException($"unknown --preset '{preset}'; known: {string.Join(", ", LlamaPresets.Names)}");
            }

            preset = preset.ToLowerInvariant();
        }

        var dtype = (commandLine.Optional("dtype") ?? (cuda ? "bfloat16" : "float32")).ToLowerInvariant() switch
        {
            "float32" or "fp32" => ScalarType.Float32,
            "bfloat16" or "bf16" => ScalarType.BFloat16,
            "float16" or "fp16" => ScalarType.Float16,
            var other => throw new UsageException($"--dtype must be float32, bfloat16 or float16, got '{other}'"),
        };

        var concurrencyLevels = commandLine.Optional("concurrency") is { } levels ? ParseConcurrency(levels) : [];
        IReadOnlyList<int> lengths = commandLine.Optional("lengths") is { } text ? ParseLengths(text)
            : concurrencyLevels.Count > 0 ? [] : cuda ? BenchOptions.GpuLengths : BenchOptions.CpuLengths;
        return new BenchOptions
        {
            Preset = preset,
            ModelDirectory = modelDirectory,
            Device = device.ToLowerInvariant(),
            DType = dtype,
            Lengths = lengths,
            Warmup = NonNegative(commandLine, "warmup", 1),
            Repeats = Math.Max(1, NonNegative(commandLine, "repeats", cuda ? 5 : 3)),
            DecodeTokens = NonNegative(commandLine, "decode-tokens", 32),
            Soak = NonNegative(commandLine, "soak", 0),
            Seed = commandLine.OptionalInt("seed", 0),
            OutDirectory = commandLine.Optional("out") ?? Path.Combine("artifacts", "bench"),
            Machine = commandLine.Optional("machine"),
            ExpectSpeedup = Positive(commandLine, "expect-speedup"),
            ExpectReencodeShare = Share(commandLine, "expect-reencode-share"),
            ExpectBlockTtftMs = Positive(commandLine, "expect-block-ttft"),
            Concurrency = concurrencyLevels,
            ConcurrencyLength = lengths.Count > 0 ? lengths.Max() : 1024,
            ArrivalRate = Positive(commandLine, "arrival-rate") ?? 20,
            ConcurrencyRequests = commandLine.Optional("requests") is { } single && !single.Contains(',') ? Math.Max(1, NonNegative(commandLine, "requests", 1)) : null,
            RequestsPerLevel = commandLine.Optional("requests") is { } perLevel && perLevel.Contains(',') ? ParseRequests(perLevel, concurrencyLevels.Count) : null,
            CheckExact = commandLine.Flag("check-exact"),
            MaxBatchSize = Math.Max(1, NonNegative(commandLine, "max-batch", new BlockSessionOptions().MaxBatchSize)),
            StepThreads = commandLine.Optional("step-threads") is null ? null : Math.Max(1, NonNegative(commandLine, "step-threads", 1)),
            ExpectBatchSpeedup = Positive(commandLine, "expect-batch-speedup"),
            // Read now: a wrong path should not wait for the end of a long run.
            Baseline = commandLine.Optional("baseline") is { } baseline ? BenchBaseline.Read(baseline) : null,
        };
    }

    private static double? Positive(CommandLine commandLine, string name)
    {
        if (commandLine.Optional(name) is null)
        {
            return null;
        }

        double value = commandLine.OptionalDouble(name, 0);
        return value > 0 ? value : throw new UsageException($"--{name} must be positive, got {value.ToString(CultureInfo.InvariantCulture)}");
    }

    /// <summary>A fraction, as <c>0.3</c> or <c>30%</c>, in (0, 1].</summary>
    private static double? Share(CommandLine commandLine, string name)
    {
        string? text = commandLine.Optional(name);
        if (text is null)
        {
            return null;
        }

        bool percent = text.EndsWith('%');
        if (!double.TryParse(percent ? text[..^1] : text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
        {
            throw new UsageException($"--{name} expects a fraction such as 0.3 or 30%, got '{text}'");
        }

        value = percent ? value / 100 : value;
        return value is > 0 and <= 1 ? value : throw new UsageException($"--{name} must lie in (0, 1] (or (0%, 100%]), got '{text}'");
    }

    private static List<int> ParseLengths(string text)
    {
        var lengths = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int length) || length < BenchPrompt.MinimumLength)
            {
                throw new UsageException($"--lengths takes comma-separated token counts of at least {BenchPrompt.MinimumLength}, got '{part}'");
            }

            lengths.Add(length);
        }

        return lengths.Count > 0 ? lengths : throw new UsageException("--lengths is empty");
    }

    private static List<int> ParseRequests(string text, int levels)
    {
        var counts = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int count) || count < 1 || count > 100_000)
            {
                throw new UsageException($"--requests takes a count or one comma-separated count per --concurrency level (1 to 100000), got '{part}'");
            }

            counts.Add(count);
        }

        return counts.Count == levels ? counts : throw new UsageException($"--requests lists {counts.Count} counts for {levels} --concurrency levels: give one per level, or a single count");
    }

    private static List<int> ParseConcurrency(string text)
    {
        var levels = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int level) || level < 1 || level > 4096)
            {
                throw new UsageException($"--concurrency takes comma-separated request counts from 1 to 4096, got '{part}'");
            }

            levels.Add(level);
        }

        return levels.Count > 0 ? levels : throw new UsageException("--concurrency is empty");
    }

    private static int NonNegative(CommandLine commandLine, string name, int fallback)
    {
        int value = commandLine.OptionalInt(name, fallback);
        return value >= 0 ? value : throw new UsageException($"--{name} must not be negative, got {value}");
    }

    private static ModelDescription Describe(LlamaConfig config, LlamaModel model)
    {
        long parameters = Parameters(config);
        return new ModelDescription
        {
            Layers = config.NumHiddenLayers,
            Hidden = config.HiddenSize,
            Heads = config.NumAttentionHeads,
            KvHeads = config.NumKeyValueHeads,
            HeadDim = config.HeadDim,
            Vocab = config.VocabSize,
            Parameters = parameters,
            WeightBytes = parameters * (model.Info.DType == ScalarType.Float32 ? 4 : 2),
            KvBytesPerToken = model.Info.KvBytesPerToken,
            Fingerprint = model.Info.Fingerprint,
        };
    }

    /// <summary>Parameters of a Llama model of this shape: embeddings, per-layer projections and norms, final norm.</summary>
    private static long Parameters(LlamaConfig config)
    {
        long hidden = config.HiddenSize, q = (long)config.NumAttentionHeads * config.HeadDim, kv = (long)config.NumKeyValueHeads * config.HeadDim;
        long perLayer = hidden * (q + 2 * kv) + q * hidden + 3 * hidden * config.IntermediateSize + 2 * hidden;
        long embeddings = (long)config.VocabSize * hidden * (config.TieWordEmbeddings ? 1 : 2);
        return embeddings + config.NumHiddenLayers * perLayer + hidden;
    }
}
