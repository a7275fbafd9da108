using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using BlockAttention.Llama.Tokenization;

// Tokenizer throughput per character class: about 1 MB (UTF-8) of each, encoded by LlamaTokenizer, in MB/s.
// A run of one class is one BPE piece (a million-byte piece for letters, spaces, newlines, CJK, emoji, ...),
// the case where merging time quadratic in a piece's length would show. Prints a markdown table and exits 1
// when a class is below --min-mbps.
//
//   dotnet run -c Release --project benchmarks/BlockAttention.TokenizerThroughput -- [--megabytes 1] [--repeats 5]
//       [--min-mbps 1] [--tokenizer tests/fixtures/tiny-llama3/tokenizer.json]
var options = Options.Parse(args);
var tokenizer = LlamaTokenizer.FromFile(options.TokenizerPath);
var classes = TextClasses.All(options.Bytes);

Console.WriteLine($"tokenizer: {options.TokenizerPath}");
Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}, " +
    $"load average before: {LoadAverage()}");
Console.WriteLine($"date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; {options.Repeats} timed runs per class after one warm-up, median");
Console.WriteLine();

// Wall-clock time is what a caller waits; the process's CPU time (all threads, the GC's included) is what the
// work costs, and tells the two apart on a shared machine where other processes take the cores.
var results = new List<(string Name, int Bytes, int Tokens, double Seconds, double CpuSeconds)>();
using var process = Process.GetCurrentProcess();
foreach ((string name, string text) in classes)
{
    int bytes = Encoding.UTF8.GetByteCount(text);
    int tokens = tokenizer.Encode(text).Count; // warm-up
    var times = new List<(double Wall, double Cpu)>();
    for (int i = 0; i < options.Repeats; i++)
    {
        process.Refresh();
        TimeSpan cpuStart = process.TotalProcessorTime;
        long start = Stopwatch.GetTimestamp();
        tokenizer.Encode(text);
        double wall = Stopwatch.GetElapsedTime(start).TotalSeconds;
        process.Refresh();
        times.Add((wall, (process.TotalProcessorTime - cpuStart).TotalSeconds));
    }

    double medianWall = times.Select(t => t.Wall).Order().ElementAt(times.Count / 2);
    double medianCpu = times.Select(t => t.Cpu).Order().ElementAt(times.Count / 2);
    results.Add((name, bytes, tokens, medianWall, medianCpu));
    Console.Error.WriteLine($"{name}: {medianWall * 1000:F1} ms");
}

Console.WriteLine("| class | MB (UTF-8) | tokens | median ms | MB/s | CPU ms | MB/s of CPU time |");
Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
foreach (var r in results)
{
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"| {r.Name} | {r.Bytes / 1e6:F2} | {r.Tokens} | {r.Seconds * 1000:F1} | {r.Bytes / 1e6 / r.Seconds:F1} | {r.CpuSeconds * 1000:F1} | {r.Bytes / 1e6 / r.CpuSeconds:F1} |"));
}

Console.WriteLine();
Console.WriteLine("| MB/s | " + string.Join(" | ", results.Select(r => r.Name)) + " |");
Console.WriteLine("|---|" + string.Concat(results.Select(_ => "---:|")));
Console.WriteLine("| wall clock | " + string.Join(" | ", results.Select(r => (r.Bytes / 1e6 / r.Seconds).ToString("F1", CultureInfo.InvariantCulture))) + " |");
Console.WriteLine("| CPU time | " + string.Join(" | ", results.Select(r => (r.Bytes / 1e6 / r.CpuSeconds).ToString("F1", CultureInfo.InvariantCulture))) + " |");
Console.WriteLine();
Console.WriteLine($"load average after: {LoadAverage()}");

// The pass mark is on wall-clock time, what a caller sees.
var slow = results.Where(r => r.Bytes / 1e6 / r.Seconds < options.MinMegabytesPerSecond).Select(r => r.Name).ToList();
if (slow.Count > 0)
{
    Console.WriteLine($"FAIL: below {options.MinMegabytesPerSecond} MB/s: {string.Join(", ", slow)}");
    return 1;
}

Console.WriteLine($"PASS: every class at least {options.MinMegabytesPerSecond} MB/s");
return 0;

static string LoadAverage() =>
    File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

/// <summary>The command line.</summary>
internal sealed record Options(string TokenizerPath, int Bytes, int Repeats, double MinMegabytesPerSecond)
{
    public static Options Parse(string[] args)
    {
        string? tokenizer = null;
        double megabytes = 1;
        int repeats = 5;
        double minMbps = 1;
        for (int i = 0; i < args.Length; i++)
        {
            string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i++])
            {
                case "--tokenizer": tokenizer = value; break;
                case "--megabytes": megabytes = double.Parse(value, CultureInfo.InvariantCulture); break;
                case "--repeats": repeats = int.Parse(value, CultureInfo.InvariantCulture); break;
                case "--min-mbps": minMbps = double.Parse(value, CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"unknown option {args[i - 1]}; options: --tokenizer PATH --megabytes N --repeats N --min-mbps N");
            }
        }

        if (megabytes is <= 0 or > 64 || repeats < 1)
        {
            throw new ArgumentException("--megabytes must be in (0, 64] and --repeats at least 1");
        }

        return new Options(tokenizer ?? FindFixtureTokenizer(), (int)(megabytes * 1e6), repeats, minMbps);
    }

    private static string FindFixtureTokenizer()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            string candidate = Path.Combine(directory.FullName, "tests", "fixtures", "tiny-llama3", "tokenizer.json");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException("No tests/fixtures/tiny-llama3/tokenizer.json above the program; give --tokenizer PATH");
    }
}

/// <summary>The texts: one character class each, about <c>bytes</c> UTF-8 bytes long.</summary>
internal static class TextClasses
{
    // Prose as the reference RAG prompts have it: English, names with diacritics, numbers, punctuation, newlines.
    private const string Prose =
        "- Title: Polish-Russian War (film)\nPolish-Russian War (Wojna polsko-ruska) is a 2009 Polish film directed by " +
        "Xawery Żuławski based on the novel Polish-Russian War under the white-red flag by Dorota Masłowska. " +
        "The film's premiere was on 22 May 2009; it won 3 awards, and the soundtrack sold 12,500 copies!\n\n" +
        "Question: Who directed it, and when was he born? Answer in one sentence -- \"quoted\" if you can.\n";

    public static IReadOnlyList<(string Name, string Text)> All(int bytes) =>
    [
        ("letters", Repeat("a", bytes)),
        ("digits", Repeat("0123456789", bytes)),
        ("whitespace", Repeat(" ", bytes)),
        ("newlines", Repeat("\n", bytes)),
        ("CJK", Repeat("中", bytes)),
        ("emoji", Repeat("😀", bytes)),
        ("combining marks", Repeat("\u0301", bytes)),
        ("lone surrogates", Repeat("\uD800", bytes)),
        ("mixed prose", Repeat(Prose, bytes)),
    ];

    // Whole units up to about `bytes` UTF-8 bytes (a lone surrogate counts as the 3 bytes of U+FFFD it encodes as).
    private static string Repeat(string unit, int bytes)
    {
        int unitBytes = Encoding.UTF8.GetByteCount(unit);
        return new StringBuilder().Insert(0, unit, Math.Max(1, bytes / unitBytes)).ToString();
    }
}
