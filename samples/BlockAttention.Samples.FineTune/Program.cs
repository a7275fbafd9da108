// Reproduces the shape of the Block-Attention paper's central result on a synthetic two-hop task:
// a small Llama trained from scratch with full attention only, measured in full and block mode,
// then block-fine-tuned (block and full copies of each sample) and measured again.
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Text;
using BlockAttention.Training;
using BlockAttention.Training.Data;
using BlockAttention.Training.Modeling;
using ScottPlot;
using static TorchSharp.torch;

var opt = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(p => p.a[2..], p => p.i + 1 < args.Length ? args[p.i + 1] : "");
int Int(string name, int fallback) => opt.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
double Real(string name, double fallback) => opt.TryGetValue(name, out var v) ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;
int seeds = Int("seeds", 3), testCount = Int("test", 500), fullSteps = Int("full-steps", 900), blockSteps = Int("block-steps", 300), batch = Int("batch", 64);
int pairs = Int("pairs", 4), minPairs = Int("min-pairs", 2), hidden = Int("hidden", 64), layers = Int("layers", 4), headDim = Int("head-dim", 16), loraRank = Int("lora-rank", 0);
double fullLr = Real("lr-full", 3e-3), blockLr = Real("lr-block", 1e-3), loraAlpha = Real("lora-alpha", 2 * loraRank);
string outDir = opt.GetValueOrDefault("out", "results"), device = opt.GetValueOrDefault("device", "cpu");
Directory.CreateDirectory(outDir);
BlockAttention.Runtime.TorchSharpNativeLibrary.EnsureRegistered(); // before the first torch call
set_num_threads(Int("threads", 1)); // one intra-op thread: a small model gains little from two, and two stall whenever the machine is busy

var cells = new Dictionary<string, List<(int Correct, int Total)>>();
var clock = Stopwatch.StartNew();
if (opt.TryGetValue("chart-from", out var from))
{
    // Redraws the chart from a results.txt (e.g. one made on a machine without the chart's native libraries).
    foreach (var line in File.ReadAllLines(Path.Combine(from, "results.txt")))
    {
        var parts = line.Split(": ");
        cells[parts[0]] = [.. parts[1].Split(", ").Select(v => v.Split('/')).Select(v => (int.Parse(v[0], CultureInfo.InvariantCulture), int.Parse(v[1], CultureInfo.InvariantCulture)))];
    }

    Chart(Path.Combine(from, "accuracy.png"));
    return;
}

for (int seed = 0; seed < seeds; seed++)
{
    var task = new TwoHopTask(seed, pairs, minPairs, Int("queries", 8), Int("people", 100), opt.ContainsKey("repeat"));
    var train = task.Build(task.TrainPeople, fullSteps * batch);
    var test = task.Examples(task.TestPeople, testCount).ToList();
    var config = new LlamaConfig
    {
        VocabSize = task.Tokenizer.Size, HiddenSize = hidden, IntermediateSize = 4 * hidden, NumHiddenLayers = layers, NumAttentionHeads = hidden / headDim,
        NumKeyValueHeads = Math.Max(1, hidden / headDim / 2), HeadDim = headDim, RmsNormEps = 1e-5, MaxPositionEmbeddings = 512, TieWordEmbeddings = opt.ContainsKey("tied"),
        EosTokenIds = [task.Tokenizer.EndOfText], Rope = new RopeSettings { Theta = 10000, Type = RopeType.Default },
    };
    using var model = TrainableLlama.CreateRandom(config, seed, device);
    // Pre-training from scratch: full attention, next-token loss on every token (passages too), as a base model is trained.
    bool everyToken = opt.GetValueOrDefault("pretrain-loss", "response") == "all";
    Train(model, [.. train.Where(s => !s.BlockAttention).Select(s => everyToken ? s with { Labels = s.InputIds } : s)], fullSteps, fullLr, null, seed, Path.Combine(outDir, $"seed{seed}-full"));
    var seen = Evaluate(model, task, task.Examples(task.TrainPeople, 200).ToList(), block: false);
    Console.WriteLine($"  (full-trained/full on 200 questions about training people: {100.0 * seen.Correct / seen.Total:F1}%)");
    Score("full-trained", "full", Evaluate(model, task, test, block: false));
    Score("full-trained", "block", Evaluate(model, task, test, block: true));
    var lora = loraRank > 0 ? new LoraOptions { Rank = loraRank, Alpha = loraAlpha } : null;
    Train(model, train, blockSteps, blockLr, lora, seed + 100, Path.Combine(outDir, $"seed{seed}-block"));
    Score("block-fine-tuned", "full", Evaluate(model, task, test, block: false));
    Score("block-fine-tuned", "block", Evaluate(model, task, test, block: true));
    Console.WriteLine($"seed {seed} done at {clock.Elapsed:mm\\:ss}");
}

var lines = new List<string> { "| model | full inference | block inference |", "|---|---|---|" };
foreach (string model in new[] { "full-trained", "block-fine-tuned" })
{
    lines.Add($"| {model} | {Cell(model, "full")} | {Cell(model, "block")} |");
}

lines.Add("");
lines.Add($"Exact match (%) over {seeds} seeds x {testCount} held-out questions, 95% Wilson interval of the pooled questions; " +
    $"per-seed counts in results.txt. {fullSteps} full-attention steps (lr {fullLr}) then {blockSteps} block fine-tuning steps (lr {blockLr}" +
    (loraRank > 0 ? $", LoRA rank {loraRank} alpha {loraAlpha}" : "") + $") of {batch} samples; {pairs * 2} passages; {clock.Elapsed:mm\\:ss} on {(device == "cpu" ? $"{Environment.ProcessorCount} CPU cores" : device)}.");
File.WriteAllLines(Path.Combine(outDir, "table.md"), lines);
File.WriteAllLines(Path.Combine(outDir, "results.txt"), cells.Select(c => $"{c.Key}: " + string.Join(", ", c.Value.Select(v => $"{v.Correct}/{v.Total}"))));
Console.WriteLine(string.Join(Environment.NewLine, lines));
Chart(Path.Combine(outDir, "accuracy.png"));

void Train(TrainableLlama model, List<TrainingSample> samples, int steps, double lr, LoraOptions? lora, int seed, string dir)
{
    if (Directory.Exists(dir))
    {
        Directory.Delete(dir, true); // a fresh run, not a resume
    }

    var options = new TrainerOptions
    {
        Steps = steps, BatchSize = batch, MicroBatchSize = Int("micro-batch", batch), LearningRate = lr, WarmupRatio = 0.05, WeightDecay = 0.01,
        LogEvery = Math.Max(1, steps / 10), Seed = seed, Lora = lora,
    };
    new Trainer(model, options).Train(samples, null, dir, p => Console.WriteLine(
        $"  step {p.Step}/{p.TotalSteps} loss {p.Loss:F3} {p.TokensPerSecond:F0} tok/s ETA {p.Remaining:mm\\:ss}"));
}

void Score(string model, string mode, (int, int) result)
{
    string key = $"{model}/{mode}";
    (cells.TryGetValue(key, out var list) ? list : cells[key] = []).Add(result);
    Console.WriteLine($"  {key}: {100.0 * result.Item1 / result.Item2:F1}%");
}

string Cell(string model, string mode)
{
    var (p, low, high) = Wilson(cells[$"{model}/{mode}"]);
    return $"{p:F1} [{low:F1}, {high:F1}]";
}

static (double P, double Low, double High) Wilson(List<(int Correct, int Total)> runs)
{
    double n = runs.Sum(r => r.Total), p = runs.Sum(r => r.Correct) / n, z = 1.96;
    double centre = (p + z * z / (2 * n)) / (1 + z * z / n), half = z * Math.Sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n);
    return (100 * p, Math.Max(0, 100 * (centre - half)), Math.Min(100, 100 * (centre + half)));
}

// The greedy first token (the answers are one word) with the one-pass block mask or plain causal attention,
// 100 questions per padded pass; the reference RAG metric.
static (int Correct, int Total) Evaluate(TrainableLlama model, TwoHopTask task, List<TrainingText> test, bool block)
{
    using var noGrad = no_grad();
    int correct = 0;
    foreach (var chunk in test.Chunk(100))
    {
        using var scope = NewDisposeScope();
        var blocks = chunk.Select(e => e.Blocks.Select(b => task.Tokenizer.Encode(b)).ToList()).ToList();
        var ids = blocks.Select(b => (IReadOnlyList<int>)[.. b.SelectMany(t => t)]).ToList();
        var local = blocks.Select(b => (IReadOnlyList<int>)(block ? [.. b.SkipLast(1).Select(t => t.Count)] : [])).ToList();
        using var mask = TrainingMask.Allowed([.. ids.Select(s => s.Count)], local, model.Device);
        var logits = model.ForwardBatch(ids, mask);
        for (int i = 0; i < chunk.Length; i++)
        {
            int next = (int)logits[i, ids[i].Count - 1].argmax().item<long>();
            correct += RagMetric.Matches(task.Tokenizer.Decode([next]), [chunk[i].Response]) ? 1 : 0;
        }
    }

    return (correct, test.Count);
}

void Chart(string path)
{
    var plot = new Plot();
    string[] labels = ["full-trained\nfull", "full-trained\nblock", "block-FT\nfull", "block-FT\nblock"];
    string[] keys = ["full-trained/full", "full-trained/block", "block-fine-tuned/full", "block-fine-tuned/block"];
    for (int i = 0; i < keys.Length; i++)
    {
        var (p, low, high) = Wilson(cells[keys[i]]);
        var bar = plot.Add.Bar(position: i, value: p, error: (high - low) / 2);
        bar.Color = i % 2 == 0 ? Colors.FireBrick : Colors.RoyalBlue;
    }

    plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual([0, 1, 2, 3], labels);
    plot.Axes.Left.Label.Text = "exact match (%)";
    plot.Title("Synthetic two-hop QA: full vs block inference, before and after block fine-tuning");
    plot.Axes.SetLimits(-0.6, 3.6, 0, 105);
    plot.SavePng(path, 900, 560);
}

/// <summary>The reference's RAG metric: normalise (lower-case, no punctuation, no articles, single spaces), then substring.</summary>
static class RagMetric
{
    public static bool Matches(string prediction, IEnumerable<string> answers) => answers.Any(a => Normalise(prediction).Contains(Normalise(a), StringComparison.Ordinal));

    private static string Normalise(string text)
    {
        const string punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"; // Python's string.punctuation
        string s = new(text.ToLowerInvariant().Where(c => !punctuation.Contains(c)).ToArray());
        s = Regex.Replace(s, @"\b(a|an|the)\b", " ");
        return string.Join(' ', s.Split(' ', StringSplitOptions.RemoveEmptyEntries));
    }
}

/// <summary>
/// Two-hop questions over 2 x pairs passages: for each of pairs people, "zZ has cY" (city zZ has company
/// cY) then, in the next passage, "cY employs pX"; the final block asks "pX ?" (where does pX work: zZ). Training responses
/// go on to ask and answer every other person ("zZ pW ? zV ..."); a test question is scored on its first
/// answer. Facts are drawn anew per question; test questions ask about (and only mention) people never
/// seen in training.
/// </summary>
sealed class TwoHopTask
{
    private const int Companies = 20, Cities = 10;
    private readonly Random _random;
    private readonly int _pairs, _minPairs, _queries;
    private readonly bool _repeat;

    public TwoHopTask(int seed, int pairs, int minPairs, int queries, int people, bool repeat)
    {
        _repeat = repeat;
        _queries = Math.Max(1, queries);
        _random = new Random(seed);
        _pairs = pairs;
        _minPairs = Math.Clamp(minPairs, 1, pairs);
        var words = new List<string> { "has", "employs", "?", "#", "[Block-Attention]" };
        int held = Math.Max(_pairs, people / 5);
        words.AddRange(Enumerable.Range(0, people).Select(i => $"p{i}"));
        words.AddRange(Enumerable.Range(0, Companies).Select(i => $"c{i}"));
        words.AddRange(Enumerable.Range(0, Cities).Select(i => $"z{i}"));
        Tokenizer = new WordTokenizer(words);
        TrainPeople = Enumerable.Range(0, people - held).ToArray();
        TestPeople = Enumerable.Range(people - held, held).ToArray();
    }

    public WordTokenizer Tokenizer { get; }

    public int[] TrainPeople { get; }

    public int[] TestPeople { get; }

    // The people named in a response are not predicted (they are the questions), only the answers and the rest.
    public List<TrainingSample> Build(int[] people, int count) =>
        [.. new TrainingSetBuilder(Tokenizer, new TrainingSetOptions { BlockPrefix = "[Block-Attention] ", MaxLength = 512, ShuffleSeed = _random.Next() })
            .Build(Examples(people, count, allQuestions: true)).Samples
            .Select(s => s with { Labels = [.. s.Labels.Select(l => l >= 0 && Tokenizer.Decode([l])[0] == 'p' ? TrainingSample.IgnoreLabel : l)] })];

    public IEnumerable<TrainingText> Examples(int[] people, int count, bool allQuestions = false)
    {
        for (int n = 0; n < count; n++)
        {
            // Training questions come with 2..pairs people (easier ones first to learn from); test questions with pairs.
            int pairCount = allQuestions ? _random.Next(_minPairs, _pairs + 1) : _pairs;
            var persons = people.OrderBy(_ => _random.Next()).Take(pairCount).ToArray();
            var companies = Enumerable.Range(0, Companies).OrderBy(_ => _random.Next()).Take(pairCount).ToArray();
            var cities = Enumerable.Range(0, Cities).OrderBy(_ => _random.Next()).Take(pairCount).ToArray();
            var passages = new List<string>();
            foreach (int i in Enumerable.Range(0, pairCount).OrderBy(_ => _random.Next()))
            {
                passages.Add($"c{companies[i]} employs p{persons[i]} ");
                passages.Add($"z{cities[i]} has c{companies[i]} ");
            }

            // Further questions pick people at random (repeats allowed), so no answer follows by elimination.
            string response = allQuestions ? $"z{cities[0]}" + string.Concat(Enumerable.Range(1, _queries - 1).Select(_ => _random.Next(pairCount)).Select(i => $" ? p{persons[i]} z{cities[i]}")) : $"z{cities[0]}";
            if (allQuestions && _repeat)
            {
                // Then the passages again, shuffled: a copying exercise (a passage's second token follows from where its
                // first stood before), as repeated text teaches a language model to look things up in its context.
                response += " #" + string.Concat(passages.OrderBy(_ => _random.Next()).Select(p => " " + p.Trim()));
            }

            yield return new TrainingText([.. passages, $"? p{persons[0]} "], response);
        }
    }
}

/// <summary>A whitespace word tokenizer over the task's closed vocabulary, with an end-of-text token.</summary>
sealed class WordTokenizer(IEnumerable<string> words) : ITextTokenizer
{
    private readonly string[] _words = [.. words, ChatSampleSplitter.EndOfText];
    private Dictionary<string, int>? _ids;

    public int Size => _words.Length;

    public int EndOfText => _words.Length - 1;

    public IReadOnlyList<int> Encode(string text)
    {
        _ids ??= _words.Select((w, i) => (w, i)).ToDictionary(p => p.w, p => p.i);
        text = text.Replace(ChatSampleSplitter.EndOfText, " " + ChatSampleSplitter.EndOfText + " ", StringComparison.Ordinal);
        return [.. text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w => _ids.TryGetValue(w, out int id) ? id : throw new ArgumentException($"'{w}' is not in the vocabulary"))];
    }

    public string Decode(IReadOnlyList<int> ids) => string.Join(' ', ids.Select(i => _words[i]));
}
