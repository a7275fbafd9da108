using System.Text.Json;
using BlockAttention.IO;
using BlockAttention.Llama.Tokenization;

namespace BlockAttention.Cli.Tokenize;

/// <summary><c>blockattn tokenize</c>: ids for a text, or a check of a golden tokenizer file.</summary>
internal static class TokenizeCommand
{
    public const string Help = """
        blockattn tokenize --tokenizer FILE (--text S | --golden FILE)

        --text S       prints the ids of S with the Llama 3 tokenizer in FILE (a tokenizer.json), then
                       the text they decode to.
        --golden FILE  checks every case of FILE, {"cases": [{"text", "ids", "decoded"?}]}: the ids of
                       "text" must be "ids", and "ids" must decode to "decoded" when given. One line
                       per case; exit 1 when any case mismatches.
        """;

    public static Verb Verb { get; } = new("tokenize", "--tokenizer FILE (--text S | --golden FILE)", Help,
        (commandLine, stdout, _, _) => Task.FromResult(Run(commandLine, stdout)));

    public static int Run(CommandLine commandLine, TextWriter stdout)
    {
        commandLine.RejectUnknown("tokenizer", "text", "golden");
        string tokenizerPath = commandLine.Required("tokenizer");
        string? text = commandLine.Optional("text");
        string? goldenPath = commandLine.Optional("golden");
        if ((text is null) == (goldenPath is null))
        {
            throw new UsageException("'tokenize' needs exactly one of --text and --golden");
        }

        LlamaTokenizer tokenizer;
        IReadOnlyList<GoldenCase>? cases = null;
        try
        {
            tokenizer = LlamaTokenizer.FromFile(tokenizerPath);
            if (goldenPath is not null)
            {
                cases = GoldenCase.ReadAll(goldenPath);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            // Bad input, not bad usage: the message names the file, without the usage text.
            throw new InputException(e.Message, e);
        }

        return cases is null ? PrintIds(stdout, tokenizer, text!) : Check(stdout, tokenizer, cases);
    }

    private static int PrintIds(TextWriter stdout, LlamaTokenizer tokenizer, string text)
    {
        IReadOnlyList<int> ids = tokenizer.Encode(text);
        stdout.WriteLine(string.Join(' ', ids));
        stdout.WriteLine(tokenizer.Decode(ids));
        return ExitCodes.Success;
    }

    private static int Check(TextWriter stdout, LlamaTokenizer tokenizer, IReadOnlyList<GoldenCase> cases)
    {
        int mismatches = 0;
        for (int i = 0; i < cases.Count; i++)
        {
            GoldenCase golden = cases[i];
            IReadOnlyList<int> ids = tokenizer.Encode(golden.Text);
            string decoded = tokenizer.Decode(golden.Ids);
            string? idsDiff = Diff.Ids(golden.Ids, ids);
            string? textDiff = golden.Decoded is null ? null : Diff.Text(golden.Decoded, decoded);
            if (textDiff is not null)
            {
                textDiff = "decoding the golden ids: " + textDiff;
            }

            string label = $"case {i,3} {Diff.Quote(golden.Text, 40)}";
            if (idsDiff is null && textDiff is null)
            {
                stdout.WriteLine($"OK       {label} ({ids.Count} ids)");
                continue;
            }

            mismatches++;
            stdout.WriteLine($"MISMATCH {label}");
            foreach (string? diff in (ReadOnlySpan<string?>)[idsDiff, textDiff])
            {
                if (diff is not null)
                {
                    stdout.WriteLine($"         {diff}");
                }
            }
        }

        stdout.WriteLine($"{cases.Count - mismatches} of {cases.Count} cases match");
        return mismatches == 0 ? ExitCodes.Success : ExitCodes.CheckFailed;
    }

    /// <summary>One case of a golden file: <c>{"text": ..., "ids": [...], "decoded": ...}</c> (<c>decoded</c> optional).</summary>
    private sealed record GoldenCase(string Text, int[] Ids, string? Decoded)
    {
        public static IReadOnlyList<GoldenCase> ReadAll(string path)
        {
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"Golden file not found: {path}", path);
            }

            try
            {
                using JsonDocument document = StrictJson.Parse(InputFile.ReadAllBytes(path, Verify.GoldenJsonReader.MaxBytes, "golden file"));
                return document.RootElement.GetProperty("cases").EnumerateArray()
                    .Select(c => new GoldenCase(
                        c.GetProperty("text").GetString()!,
                        [.. c.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32())],
                        c.TryGetProperty("decoded", out JsonElement decoded) ? decoded.GetString() : null))
                    .ToArray();
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new FormatException($"{path}: not a golden file of the form {{\"cases\": [{{\"text\", \"ids\", \"decoded\"}}]}} ({e.Message})", e);
            }
        }
    }
}
