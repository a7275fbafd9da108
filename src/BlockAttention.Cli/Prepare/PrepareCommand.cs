using BlockAttention.Llama.Tokenization;
using BlockAttention.Training.Data;

namespace BlockAttention.Cli.Prepare;

/// <summary><c>blockattn prepare</c>: tokenizes a training file into block and full-attention samples.</summary>
internal static class PrepareCommand
{
    public const string Help = """
        blockattn prepare --input FILE.jsonl --out FILE.jsonl (--tokenizer tokenizer.json | --model DIR)
                          [--max-length 4096] [--seed 42] [--no-prefix]

        FILE.jsonl holds one record per line: {"messages": [{"role", "content"}, ...]} (chunked into
        blocks; one sample per assistant turn) or {"prompt": "...", "blocks": [...], "response": "..."}.
        Each block is tokenized on its own; the response ends with <|end_of_text|>; the prompt is
        excluded from the loss. Every example yields a block-attention copy (with the text
        [Block-Attention] in front of its first block, unless --no-prefix) and a full-attention copy,
        shuffled by --seed. Examples longer than --max-length tokens are dropped and counted.
        """;

    public static Verb Verb { get; } = new("prepare", "--input FILE.jsonl --out FILE.jsonl (--tokenizer FILE | --model DIR) [--max-length N]", Help,
        (commandLine, stdout, _, _) => Task.FromResult(Run(commandLine, stdout)));

    public static int Run(CommandLine commandLine, TextWriter stdout)
    {
        commandLine.RejectUnknown("input", "out", "tokenizer", "model", "max-length", "seed", "no-prefix");
        string input = commandLine.Required("input");
        string output = commandLine.Required("out");
        string tokenizerPath = commandLine.Optional("tokenizer")
            ?? (commandLine.Optional("model") is { } model ? Path.Combine(model, "tokenizer.json") : throw new UsageException("--tokenizer or --model is required"));
        if (!File.Exists(input))
        {
            throw new InputException($"input file not found: {input}");
        }

        if (!File.Exists(tokenizerPath))
        {
            throw new InputException($"tokenizer not found: {tokenizerPath}");
        }

        var options = new TrainingSetOptions
        {
            MaxLength = commandLine.OptionalInt("max-length", 4096),
            ShuffleSeed = commandLine.OptionalInt("seed", 42),
            BlockPrefix = commandLine.Flag("no-prefix") ? "" : "[Block-Attention]",
        };
        if (options.MaxLength < 2)
        {
            throw new UsageException("--max-length must be at least 2");
        }

        try
        {
            var tokenizer = LlamaTokenizer.FromFile(tokenizerPath);
            var set = new TrainingSetBuilder(tokenizer, options).Build(TrainingTextReader.Read(input));
            TrainingSampleFile.Write(output, set.Samples);
            stdout.WriteLine($"examples {set.Examples}, samples {set.Samples.Count} ({set.Samples.Count(s => s.BlockAttention)} block, {set.Samples.Count(s => !s.BlockAttention)} full), " +
                $"dropped {set.DroppedTooLong} over {options.MaxLength} tokens and {set.DroppedEmptyResponse} with an empty response, tokens {set.Tokens} ({set.LossTokens} in the loss)");
            return ExitCodes.Success;
        }
        catch (TrainingDataException e)
        {
            throw new InputException(e.Message, e);
        }
    }
}
