using BlockAttention.Generation;
using BlockAttention.Prompts;

namespace BlockAttention.Cli.Generate;

/// <summary><c>blockattn generate</c>: runs a prompt of blocks through <see cref="BlockSession"/>, streaming the text and reporting timings and reuse.</summary>
internal static class GenerateCommand
{
    public const string Help = """
        blockattn generate --model DIR --blocks FILE.json [--mode block|full|onepass] [--max-new-tokens N]
                           [--temperature T] [--top-k K] [--top-p P] [--seed S]
                           [--device cpu|cuda[:N]] [--dtype float32|bfloat16] [--json] [--repeat N]

        FILE.json is one of:
          ["block 0", "block 1", ..., "final block"]
          {"blocks": ["block 0", ..., "final block"]}
          {"passages": [{"title": "...", "text": "..."}], "question": "...", "instruction": "..."}
            (the reference RAG layout: instruction block, one block per passage, question block;
             "instruction" is optional)
        Modes: block (default; local blocks encoded alone and reused through the block store),
        full (ordinary causal attention), onepass (block attention as one masked forward pass).
        Greedy unless --temperature > 0. Stops on the model's end-of-sequence tokens and the reference
        stop strings. --repeat N runs the same prompt N times in one session, so later runs reuse the
        blocks the first one encoded.
        Prints the text as it is generated, then one line per run: TTFT, total time, tokens/s, blocks
        reused/encoded, prompt tokens computed, finish reason. --json prints instead one JSON object
        per run, on one line, with all of these fields and the token ids.
        """;

    public static Verb Verb { get; } = new("generate", """
        --model DIR --blocks FILE.json [--mode block|full|onepass] [--max-new-tokens N]
        [--temperature T --top-k K --top-p P --seed S] [--device cpu|cuda]
        [--dtype float32|bfloat16] [--json] [--repeat N]
        """, Help, (commandLine, stdout, _, cancellationToken) => RunAsync(commandLine, stdout, cancellationToken));

    public static async Task<int> RunAsync(CommandLine commandLine, TextWriter stdout, CancellationToken cancellationToken)
    {
        commandLine.RejectUnknown([.. ModelOptions.Names, "blocks", "mode", "max-new-tokens", "temperature", "top-k", "top-p", "seed", "json", "repeat"]);
        var modelOptions = ModelOptions.Parse(commandLine);
        string blocksPath = commandLine.Required("blocks");
        string modeName = commandLine.Choice("mode", "block", "block", "full", "onepass");
        var options = ParseGenerationOptions(commandLine, modeName);
        int repeat = commandLine.OptionalInt("repeat", 1);
        if (repeat < 1)
        {
            throw new UsageException($"--repeat must be at least 1, got {repeat}");
        }

        bool json = commandLine.Flag("json");

        var prompt = BlocksFile.Read(blocksPath);
        using var model = modelOptions.Load();
        if (model.Tokenizer is null)
        {
            throw new InputException($"{modelOptions.Directory} has no tokenizer.json: generate needs one to tokenize the blocks and decode the text");
        }

        var (store, storeName) = BlockStores.Create();
        using (store)
        {
            using var session = new BlockSession(model, store);
            for (int run = 1; run <= repeat; run++)
            {
                var result = await RunOnceAsync(session, prompt, options, json ? null : stdout, blocksPath, cancellationToken).ConfigureAwait(false);
                var report = new RunReport(run, repeat, modeName, storeName, model.Info.Device.ToString(), modelOptions.DTypeName, result);
                stdout.WriteLine(json ? report.ToJson() : report.Summary());
                stdout.Flush();
            }
        }

        return ExitCodes.Success;
    }

    /// <summary>One generation; the text goes to <paramref name="textOut"/> as it comes, when given.</summary>
    private static async Task<GenerationResult> RunOnceAsync(BlockSession session, BlockPrompt prompt, GenerationOptions options, TextWriter? textOut, string blocksPath,
        CancellationToken cancellationToken)
    {
        GenerationResult? result = null;
        try
        {
            await foreach (var chunk in session.StreamAsync(prompt, options, cancellationToken).ConfigureAwait(false))
            {
                if (textOut is not null && chunk.Text.Length > 0)
                {
                    textOut.Write(chunk.Text);
                    textOut.Flush();
                }

                result = chunk.Result ?? result;
            }
        }
        catch (ArgumentException e)
        {
            // The options were validated up front, so this is the prompt: too long for the model, or an empty final block.
            throw new InputException($"{blocksPath}: {e.Message}", e);
        }

        textOut?.WriteLine();
        return result ?? throw new InvalidOperationException("the session ended without a result");
    }

    private static GenerationOptions ParseGenerationOptions(CommandLine commandLine, string modeName)
    {
        int? seed = commandLine.Optional("seed") is null ? null : commandLine.OptionalInt("seed", 0);
        var options = new GenerationOptions
        {
            Mode = modeName switch
            {
                "full" => AttentionMode.Full,
                "onepass" => AttentionMode.BlockOnePass,
                _ => AttentionMode.Block,
            },
            MaxNewTokens = commandLine.OptionalInt("max-new-tokens", new GenerationOptions().MaxNewTokens),
            Temperature = (float)commandLine.OptionalDouble("temperature", 0),
            TopK = commandLine.OptionalInt("top-k", 0),
            TopP = (float)commandLine.OptionalDouble("top-p", 1),
            Seed = seed,
        };
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new UsageException(e.Message);
        }

        return options;
    }
}
