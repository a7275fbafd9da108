using System.Globalization;
using BlockAttention.Cli.Generate;
using BlockAttention.Evaluation;
using BlockAttention.Generation;

namespace BlockAttention.Cli.Eval;

/// <summary>
/// <c>blockattn eval</c>: answers every record of a RAG data file with the reference RAG prompt,
/// in block and/or full attention, and scores the answers with the reference metric.
/// </summary>
internal static class EvalCommand
{
    public const string Help = """
        blockattn eval --model DIR --data FILE.jsonl [--mode block|full|both] [--out FILE.jsonl]
                       [--max-new-tokens N] [--limit N] [--device cpu|cuda[:N]] [--dtype float32|bfloat16]

        FILE.jsonl holds one RAG record per line, as the Block-Attention reference prepares them:
          {"question": "...", "answers": ["...", ...], "documents": [{"title": "...", "text": "...", "score": 0.9}, ...]}
        (other keys are ignored). Each record becomes the reference RAG prompt: the instruction block,
        one block per document in the order given, and the question as the final block. Generation is
        greedy, at most --max-new-tokens tokens (default 200, as in the paper), and stops on the
        reference's stop strings.

        A prediction is correct when one of the record's answers, normalised as SQuAD does (lower case,
        no punctuation, no articles, single spaces), is a substring of the normalised generated text
        (cut at <|im_end|>, then at <|eot_id|>). Accuracy is the percentage of correct records.

        --mode both (the default) runs block mode then full mode over the same records. In block mode
        the documents' blocks are kept in a block store across records, so a passage that recurs is
        encoded once. Prints, per mode: accuracy, TTFT p50 and p95, and the store hit rate (local
        blocks that came from the store). --out writes one JSON line per record and mode with the
        generated text, the prediction, whether it is correct, and its timings. --limit evaluates
        only the first N records. A progress bar goes to the error stream.
        """;

    public static Verb Verb { get; } = new("eval", """
        --model DIR --data FILE.jsonl [--mode block|full|both] [--out FILE.jsonl]
        [--max-new-tokens N] [--limit N] [--device cpu|cuda] [--dtype float32|bfloat16]
        """, Help, RunAsync);

    public static async Task<int> RunAsync(CommandLine commandLine, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken)
    {
        commandLine.RejectUnknown([.. ModelOptions.Names, "data", "mode", "out", "max-new-tokens", "limit"]);
        var modelOptions = ModelOptions.Parse(commandLine);
        string dataPath = commandLine.Required("data");
        string modeName = commandLine.Choice("mode", "both", "block", "full", "both");
        string? outPath = commandLine.Optional("out");
        int maxNewTokens = commandLine.OptionalInt("max-new-tokens", 200);
        int limit = commandLine.OptionalInt("limit", int.MaxValue);
        if (maxNewTokens < 1)
        {
            throw new UsageException($"--max-new-tokens must be at least 1, got {maxNewTokens}");
        }

        if (limit < 1)
        {
            throw new UsageException($"--limit must be at least 1, got {limit}");
        }

        var records = ReadRecords(dataPath).Take(limit).ToList();
        AttentionMode[] modes = modeName switch
        {
            "block" => [AttentionMode.Block],
            "full" => [AttentionMode.Full],
            _ => [AttentionMode.Block, AttentionMode.Full],
        };

        using var model = modelOptions.Load();
        if (model.Tokenizer is null)
        {
            throw new InputException($"{modelOptions.Directory} has no tokenizer.json: eval needs one to build the prompts and read the answers");
        }

        using var predictions = outPath is null ? null : OpenOut(outPath);
        var summaries = new List<EvalSummary>();
        foreach (var mode in modes)
        {
            // A fresh store per mode: block mode's hit rate counts only its own reuse.
            var (store, _) = BlockStores.Create();
            using (store)
            using (var session = new BlockSession(model, store))
            {
                var progress = new ProgressBar(stderr, $"{ModeName(mode)} mode", records.Count);
                var outcomes = new List<EvalOutcome>(records.Count);
                for (int i = 0; i < records.Count; i++)
                {
                    var outcome = await EvalOutcome.RunAsync(session, records[i], i, mode, maxNewTokens, cancellationToken).ConfigureAwait(false);
                    outcomes.Add(outcome);
                    predictions?.WriteLine(outcome.ToJson(ModeName(mode)));
                    progress.Report(i + 1);
                }

                progress.Done();
                summaries.Add(EvalSummary.Of(ModeName(mode), outcomes));
            }
        }

        stdout.Write(EvalSummary.Table(summaries, records.Count, dataPath));
        if (outPath is not null)
        {
            stdout.WriteLine(string.Create(CultureInfo.InvariantCulture, $"predictions: {outPath} ({records.Count * modes.Length} lines)"));
        }

        return ExitCodes.Success;
    }

    public static string ModeName(AttentionMode mode) => mode == AttentionMode.Block ? "block" : "full";

    private static IReadOnlyList<RagRecord> ReadRecords(string path)
    {
        if (!File.Exists(path))
        {
            throw new InputException($"data file not found: {path}");
        }

        try
        {
            var records = RagDataReader.ReadFile(path);
            return records.Count > 0 ? records : throw new InputException($"{path} holds no records");
        }
        catch (RagDataFormatException e)
        {
            throw new InputException(e.Message, e);
        }
        catch (IOException e)
        {
            throw new InputException($"cannot read {path}: {e.Message}", e);
        }
    }

    private static StreamWriter OpenOut(string path)
    {
        try
        {
            return new StreamWriter(path, append: false) { AutoFlush = true };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InputException($"cannot write --out {path}: {e.Message}", e);
        }
    }
}
