using System.Text.Json;
using BlockAttention.Cli.Bench;
using BlockAttention.Reports;

// Reads the JSON of one or more `blockattn bench` runs and writes, into --out, a chart per run
// (TTFT against prompt length, full vs block, log scales) and results.md, a table for the README.
const string Usage = """
    usage: BlockAttention.Reports [--out DIR] [--baseline anchor_ttft.json] bench-*.json...
      --out       where to write the PNG charts and results.md (default: the first file's folder)
      --baseline  the JSON of hf_baseline_ttft.py: its full and block TTFT are drawn on GPU charts
    """;

string? outDirectory = null;
string? baselinePath = null;
var inputs = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--out" when i + 1 < args.Length:
            outDirectory = args[++i];
            break;
        case "--baseline" when i + 1 < args.Length:
            baselinePath = args[++i];
            break;
        case "-h" or "--help":
            Console.WriteLine(Usage);
            return 0;
        case var arg when arg.StartsWith("--", StringComparison.Ordinal):
            Console.Error.WriteLine($"unknown option {arg}\n{Usage}");
            return 2;
        default:
            inputs.Add(args[i]);
            break;
    }
}

if (inputs.Count == 0)
{
    Console.Error.WriteLine(Usage);
    return 2;
}

outDirectory ??= Path.GetDirectoryName(Path.GetFullPath(inputs[0]))!;
Directory.CreateDirectory(outDirectory);
var baseline = baselinePath is null ? null : HfBaseline.Read(baselinePath);
var runs = new List<(BenchReport Report, string Chart)>();
foreach (string input in inputs)
{
    var report = JsonSerializer.Deserialize<BenchReport>(File.ReadAllText(input), BenchReport.JsonOptions)
        ?? throw new InvalidDataException($"{input} holds no report");
    string chart = Path.ChangeExtension(Path.GetFileName(input), ".png");
    bool onGpu = report.Device.StartsWith("cuda", StringComparison.OrdinalIgnoreCase);
    TtftChart.Write(report, onGpu ? baseline : null, Path.Combine(outDirectory, chart));
    runs.Add((report, chart));
    Console.WriteLine($"wrote {Path.Combine(outDirectory, chart)}");
}

string table = Path.Combine(outDirectory, "results.md");
File.WriteAllText(table, ResultsTable.Markdown(runs));
Console.WriteLine($"wrote {table}");
return 0;
