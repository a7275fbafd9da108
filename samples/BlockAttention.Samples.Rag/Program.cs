// Block-Attention on a small RAG workload: one shared set of passages, three questions.
// For each question: the prompt's blocks and where their states came from, time to first token
// in full attention beside Block-Attention, and the answer streamed token by token.
using System.Diagnostics;
using System.Text.Json;
using BlockAttention;
using BlockAttention.Caching;
using BlockAttention.Evaluation;
using BlockAttention.Generation;
using BlockAttention.Llama;
using BlockAttention.Llama.Tokenization;
using BlockAttention.Prompts;
using BlockAttention.Text;
using Spectre.Console;
using static TorchSharp.torch;

const string Usage = """
    Block-Attention RAG sample: three questions over one shared set of passages.

      dotnet run --project samples/BlockAttention.Samples.Rag -c Release -- [options]

      --model DIR        a Llama checkpoint folder (config.json, safetensors, tokenizer.json),
                         e.g. a download of ldsjmdy/Tulu3-Block-FT. Default: the bundled tiny test model.
      --preset NAME      a published model's shape with random weights: smollm2-135m, llama-3.2-1b, llama-3.1-8b
      --device cpu|cuda  where to run (default cpu); --dtype float32|bfloat16 (default: float32 on cpu, bfloat16 on cuda)
      --max-new-tokens N the longest answer (default 32)
    """;

SampleOptions? options;
try
{
    options = ParseArguments(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

if (options is null)
{
    Console.WriteLine(Usage);
    return 0;
}

if (options.Model is { } folder && !File.Exists(Path.Combine(folder, "config.json")))
{
    Console.Error.WriteLine($"error: --model {folder}: no config.json there; give a Hugging Face checkpoint folder");
    return 2;
}

string repoRoot = FindRepositoryRoot();
string fixture = Path.Combine(repoRoot, "tests", "fixtures", "tiny-llama3");
var loadOptions = new LlamaLoadOptions { Device = options.Device, DType = options.DType };
string description = options.Preset is { } preset
    ? $"[bold]{preset}[/] shape with [yellow]random weights[/], tokenized with the bundled Llama 3 tokenizer"
    : options.Model is { } dir ? $"checkpoint [bold]{Markup.Escape(dir)}[/]" : "the bundled tiny test model [bold]tests/fixtures/tiny-llama3[/] (2 layers, hidden size 32)";
AnsiConsole.MarkupLine($"Model: {description}, {options.DType.ToString().ToLowerInvariant()} on {options.Device}");
if (options.Model is null)
{
    AnsiConsole.MarkupLine("[yellow]Its weights are random: the answers below are noise. The timings and the block reuse are real.[/]");
    if (options.Preset is null)
    {
        AnsiConsole.MarkupLine("[grey]This model is so small that fixed costs dominate its timings; --preset smollm2-135m shows a realistic speed-up.[/]");
    }
}

var passages = JsonSerializer.Deserialize<List<RagPassage>>(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "data", "varnholm-passages.json")),
    new JsonSerializerOptions(JsonSerializerDefaults.Web))!;
(string Question, string Answer)[] questions =
[
    ("In which town was the engineer who designed Lunde's breakwater born?", "Skarvik"),
    ("How long does the ferry crossing from Ostrid to Lunde take?", "one hour and forty minutes"),
    ("Which prize did Ingrid Sael's novel win?", "Northern Book Prize"),
];

LlamaModel model = null!;
ITextTokenizer tokenizer = null!;
using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 2L << 30 });
BlockSession session = null!;
string loadSummary = "";
double loadSeconds = 0;
// Redrawn live on a terminal; when the output is redirected, drawn once at the end.
try
{
    await AnsiConsole.Progress().AutoRefresh(AnsiConsole.Profile.Capabilities.Interactive)
        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
        .StartAsync(async progress =>
        {
            var loading = progress.AddTask("Loading the model");
            var clock = Stopwatch.StartNew();
            var withProgress = new LlamaLoadOptions
            {
                Device = loadOptions.Device,
                DType = loadOptions.DType,
                Progress = new Progress<ModelLoadProgress>(p => loading.Value = 100 * p.Fraction),
            };
            model = options.Preset is { } name ? LlamaModel.CreateRandom(name, withProgress) : LlamaModel.Load(options.Model ?? fixture, withProgress);
            // A random-weight preset has no tokenizer of its own: the bundled Llama 3 one stands in.
            tokenizer = model.Tokenizer ?? LlamaTokenizer.FromFile(Path.Combine(fixture, "tokenizer.json"));
            loading.Value = 100;
            loadSeconds = clock.Elapsed.TotalSeconds;
            loading.Description = $"Loaded the model in {loadSeconds:0.0} s";

            // Passages are encoded once, at ingestion, and kept in the store for every later question.
            session = new BlockSession(model, store);
            var encoding = progress.AddTask($"Encoding {passages.Count} passages", maxValue: passages.Count);
            foreach (var passage in passages)
            {
                await session.PrecomputeAsync([PromptBlock.FromTokens(Tokens(RagPromptTemplate.RenderPassage(passage)))]);
                encoding.Increment(1);
            }

            encoding.Description = $"Encoded {passages.Count} passages into the store";
            loadSummary = $"{loading.Description}; encoded {passages.Count} passages into the store in {(clock.Elapsed.TotalSeconds - loadSeconds):0.0} s.";
        });
}
catch (Exception e) when (e is IOException or FormatException or ArgumentException or NotSupportedException or InvalidOperationException)
{
    // A damaged checkpoint, a device that is not there: the loader's message names the file or setting.
    AnsiConsole.WriteLine();
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}

if (!AnsiConsole.Profile.Capabilities.Interactive)
{
    AnsiConsole.WriteLine(loadSummary);
}

using (model)
using (session)
{
    for (int q = 0; q < questions.Length; q++)
    {
        var (question, answer) = questions[q];
        AnsiConsole.WriteLine();
        AnsiConsole.Write(new Rule($"[bold]Question {q + 1} of {questions.Length}[/]: {Markup.Escape(question)}").LeftJustified());
        var blocks = RagPromptTemplate.Render(passages, question);
        var prompt = BlockPrompt.FromTokenizedBlocks(blocks.Select(b => (IEnumerable<int>)Tokens(b)));

        // Full attention: the whole prompt in one causal pass; only its first token is needed here.
        var full = await session.GenerateAsync(prompt, new GenerationOptions { Mode = AttentionMode.Full, MaxNewTokens = 1 });

        // Block-Attention: local blocks from the store (or encoded alone), only the question computed; streamed.
        AnsiConsole.Markup("[bold]Answer:[/] ");
        var decoder = new StreamingTextDecoder(tokenizer);
        GenerationResult? result = null;
        // The prompt is given as token ids, so it carries no RAG stop strings of its own: name the reference's.
        var generation = new GenerationOptions { MaxNewTokens = options.MaxNewTokens, StopStrings = GenerationOptions.ReferenceStopStrings };
        await foreach (var chunk in session.StreamAsync(prompt, generation))
        {
            if (chunk.TokenId is int id)
            {
                AnsiConsole.Markup(Markup.Escape(decoder.Append(id)));
            }

            result = chunk.Result ?? result;
        }

        AnsiConsole.WriteLine(decoder.Flush());
        ShowBlocks(blocks, result!);
        double fullMs = full.TimeToFirstToken.TotalMilliseconds, blockMs = result!.TimeToFirstToken.TotalMilliseconds;
        AnsiConsole.MarkupLine($"TTFT: full attention [bold]{fullMs:0.0} ms[/], Block-Attention [bold]{blockMs:0.0} ms[/] " +
            $"([bold green]{fullMs / blockMs:0.0}x[/]); {result.ReusedBlocks} of {result.LocalBlocks} blocks from the store, " +
            $"{result.ComputedPromptTokens} of {result.PromptTokens} prompt tokens computed.");
        string text = decoder.TokenCount > 0 ? tokenizer.Decode(result.TokenIds) : "";
        AnsiConsole.MarkupLine($"[grey]Gold answer: {Markup.Escape(answer)}; the reference metric scores this answer " +
            $"{(RagAnswerMetric.IsCorrect(text, [answer]) ? "correct" : "incorrect")}.[/]");
    }
}

var statistics = store.Statistics;
AnsiConsole.WriteLine();
AnsiConsole.MarkupLine($"Block store: {statistics.Entries} blocks, {statistics.Bytes / 1024.0 / 1024.0:0.0} MiB, {statistics.Hits} hits, {statistics.Misses} misses.");
return 0;

// The prompt's blocks as token ids of the model's vocabulary (random presets: folded into their smaller vocabulary).
int[] Tokens(string text) => [.. tokenizer.Encode(text).Select(id => id % model.Info.VocabSize)];

void ShowBlocks(IReadOnlyList<string> blocks, GenerationResult result)
{
    var table = new Table().Border(TableBorder.Rounded).AddColumn("#").AddColumn("Block").AddColumn(new TableColumn("Tokens").RightAligned()).AddColumn("States");
    foreach (var block in result.Blocks)
    {
        string text = blocks[block.Index].Replace("\n", " ", StringComparison.Ordinal).Trim();
        string preview = text.Length > 36 ? text[..35] + "…" : text;
        string source = block.Outcome switch
        {
            BlockOutcome.Reused => "[green]from the store[/]",
            BlockOutcome.Encoded => "[yellow]encoded now[/]",
            BlockOutcome.Final => "[blue]computed (final)[/]",
            _ => block.Outcome.ToString(),
        };
        table.AddRow($"{block.Index}", Markup.Escape(preview), $"{block.TokenCount}", source);
    }

    AnsiConsole.Write(table);
}

static SampleOptions? ParseArguments(string[] args)
{
    var values = new Dictionary<string, string>();
    for (int i = 0; i < args.Length; i++)
    {
        if (args[i] is "--help" or "-h")
        {
            return null;
        }

        if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
        {
            throw new ArgumentException($"unexpected argument '{args[i]}'; --help lists the options");
        }

        values[args[i][2..]] = args[++i];
    }

    foreach (string name in values.Keys.Except(["model", "preset", "device", "dtype", "max-new-tokens"]))
    {
        throw new ArgumentException($"unknown option --{name}; --help lists the options");
    }

    string device = values.GetValueOrDefault("device", "cpu");
    string dtype = values.GetValueOrDefault("dtype", device == "cpu" ? "float32" : "bfloat16");
    if (values.ContainsKey("model") && values.ContainsKey("preset"))
    {
        throw new ArgumentException("give --model or --preset, not both");
    }

    if (values.TryGetValue("preset", out string? preset) && !LlamaPresets.TryGet(preset, out _))
    {
        throw new ArgumentException($"unknown preset '{preset}'; known: {string.Join(", ", LlamaPresets.Names)}");
    }

    int maxNewTokens = int.TryParse(values.GetValueOrDefault("max-new-tokens", "32"), out int n) && n > 0
        ? n
        : throw new ArgumentException("--max-new-tokens must be a whole number above 0");
    return new SampleOptions(values.GetValueOrDefault("model"), preset, device,
        dtype switch
        {
            "float32" => ScalarType.Float32,
            "bfloat16" => ScalarType.BFloat16,
            _ => throw new ArgumentException($"--dtype must be float32 or bfloat16, got '{dtype}'"),
        }, maxNewTokens);
}

// The repository's root, where the bundled test model lives: found above the sample's binaries.
static string FindRepositoryRoot()
{
    for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
    {
        if (Directory.Exists(Path.Combine(directory.FullName, "tests", "fixtures", "tiny-llama3")))
        {
            return directory.FullName;
        }
    }

    return Directory.GetCurrentDirectory();
}

internal sealed record SampleOptions(string? Model, string? Preset, string Device, ScalarType DType, int MaxNewTokens);
