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
int seeds = Int("seeds", 3), testCount = Int("test", 500), fullSteps = Int("full-steps", 100), blockSteps = Int("block-steps", 30), batch = Int("batch", 8);
string outDir = opt.GetValueOrDefault("out", "results"), device = opt.GetValueOrDefault("device", "cpu");
Directory.CreateDirectory(outDir);
BlockAttention.Runtime.TorchSharpNativeLibrary.EnsureRegistered(); // before the first torch call
set_num_threads(Environment.ProcessorCount);

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
    var task = new TwoHopTask(seed);
    var train = task.Build(task.TrainPeople, fullSteps * batch);
    var test = task.Examples(task.TestPeople, testCount).ToList();
    var config = new LlamaConfig
    {
        VocabSize = task.Tokenizer.Size, HiddenSize = 96, IntermediateSize = 256, NumHiddenLayers = 4, NumAttentionHeads = 4, NumKeyValueHeads = 2,
        HeadDim = 24, RmsNormEps = 1e-5, MaxPositionEmbeddings = 512, TieWordEmbeddings = true, EosTokenIds = [task.Tokenizer.EndOfText],
        Rope = new RopeSettings { Theta = 10000, Type = RopeType.Default },
    };
    using var model = TrainableLlama.CreateRandom(config, seed, device);
    var fullOnly = train.Where(s => !s.BlockAttention).ToList();
    Train(model, fullOnly, fullSteps, 1e-3, seed, Path.Combine(outDir, $"seed{seed}-full"));
    Score("full-trained", "full", Evaluate(model, task, test, block: false));
    Score("full-trained", "block", Evaluate(model, task, test, block: true));
    Train(model, train, blockSteps, 3e-4, seed + 100, Path.Combine(outDir, $"seed{seed}-block"));
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
    $"per-seed counts in results.txt. {fullSteps} full-attention steps then {blockSteps} block fine-tuning steps of {batch} samples; {clock.Elapsed:mm\\:ss} on {(device == "cpu" ? $"{Environment.ProcessorCount} CPU cores" : device)}.");
File.WriteAllLines(Path.Combine(outDir, "table.md"), lines);
File.WriteAllLines(Path.Combine(outDir, "results.txt"), cells.Select(c => $"{c.Key}: " + string.Join(", ", c.Value.Select(v => $"{v.Correct}/{v.Total}"))));
Console.WriteLine(string.Join(Environment.NewLine, lines));
Chart(Path.Combine(outDir, "accuracy.png"));

void Train(TrainableLlama model, List<TrainingSample> samples, int steps, double lr, int seed, string dir)
{
    if (Directory.Exists(dir))
    {
        Directory.Delete(dir, true); // a fresh run, not a resume
    }

    var options = new TrainerOptions { Steps = steps, BatchSize = batch, LearningRate = lr, WarmupRatio = 0.05, WeightDecay = 0.01, LogEvery = Math.Max(1, steps / 5), Seed = seed };
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

// Greedy answer (one word, then end-of-text) with the one-pass block mask or plain causal attention; the reference RAG metric.
static (int Correct, int Total) Evaluate(TrainableLlama model, TwoHopTask task, List<TrainingText> test, bool block)
{
    using var noGrad = no_grad();
    int correct = 0;
    foreach (var example in test)
    {
        var blocks = example.Blocks.Select(b => task.Tokenizer.Encode(b)).ToList();
        var ids = blocks.SelectMany(b => b).ToList();
        int[] local = block ? [.. blocks.Take(blocks.Count - 1).Select(b => b.Count)] : [];
        var generated = new List<int>();
        for (int step = 0; step < 2; step++)
        {
            using var scope = NewDisposeScope();
            using var mask = TrainingMask.Allowed(ids.Count, local, model.Device);
            int next = (int)model.Forward(ids.ToArray(), mask)[-1].argmax().item<long>();
            if (next == task.Tokenizer.EndOfText)
            {
                break;
            }

            generated.Add(next);
            ids.Add(next);
        }

        correct += RagMetric.Matches(task.Tokenizer.Decode(generated), [example.Response]) ? 1 : 0;
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
/// Two-hop questions over eight passages: "pX works for cY ." and "cY is in zZ ." hold the answer;
/// six distractor passages state facts about other people and companies. Facts are drawn anew per
/// question, so the model must read them; test questions ask about people never seen in training.
/// </summary>
sealed class TwoHopTask
{
    private const int People = 300, Companies = 60, Cities = 40;
    private readonly Random _random;

    public TwoHopTask(int seed)
    {
        _random = new Random(seed);
        var words = new List<string> { "works", "for", "is", "in", "question", ":", "where", "does", "work", "?", ".", "answer", "[Block-Attention]" };
        words.AddRange(Enumerable.Range(0, People).Select(i => $"p{i}"));
        words.AddRange(Enumerable.Range(0, Companies).Select(i => $"c{i}"));
        words.AddRange(Enumerable.Range(0, Cities).Select(i => $"z{i}"));
        Tokenizer = new WordTokenizer(words);
        TrainPeople = Enumerable.Range(0, 240).ToArray();
        TestPeople = Enumerable.Range(240, 60).ToArray();
    }

    public WordTokenizer Tokenizer { get; }

    public int[] TrainPeople { get; }

    public int[] TestPeople { get; }

    public List<TrainingSample> Build(int[] people, int count) =>
        [.. new TrainingSetBuilder(Tokenizer, new TrainingSetOptions { BlockPrefix = "[Block-Attention] ", MaxLength = 512, ShuffleSeed = _random.Next() })
            .Build(Examples(people, count)).Samples];

    public IEnumerable<TrainingText> Examples(int[] people, int count)
    {
        for (int n = 0; n < count; n++)
        {
            var persons = people.OrderBy(_ => _random.Next()).Take(4).ToArray();
            var companies = Enumerable.Range(0, Companies).OrderBy(_ => _random.Next()).Take(4).ToArray();
            var passages = new List<string>();
            for (int i = 0; i < 4; i++)
            {
                passages.Add($"p{persons[i]} works for c{companies[i]} . ");
                if (i < 3)
                {
                    passages.Add($"c{companies[i]} is in z{_random.Next(Cities)} . ");
                }
            }

            passages.Add($"c{Enumerable.Range(0, Companies).Except(companies).ElementAt(_random.Next(Companies - 4))} is in z{_random.Next(Cities)} . ");
            string answer = passages[1].Split(' ')[3];
            var shuffled = passages.OrderBy(_ => _random.Next()).ToList();
            yield return new TrainingText([.. shuffled, $"question : where does p{persons[0]} work ? answer : "], answer);
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
