using BlockAttention.Attention;
using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Models;
using BlockAttention.Prompts;
using static TorchSharp.torch;

namespace BlockAttention.Cli.Verify;

/// <summary>
/// Runs golden cases on a model and judges the outputs against the reference: full attention as
/// one causal forward pass; block attention on the cached inference path (each local block
/// encoded alone from position 0, assembled with re-rotated keys by <see cref="BlockAssembler"/>,
/// the final block on top); then greedy decoding in both. Optionally the same through
/// <see cref="BlockSession"/>, the path applications use.
/// </summary>
internal sealed class CaseVerifier(ICausalLanguageModel model, GoldenSuite suite, VerificationTolerance tolerance)
{
    private readonly ModelInfo _info = model.Info;
    private readonly DeviceClock _clock = new(model.Info.Device);

    /// <summary>Checks that the case fits this model (token ids, logits width, length), so a run cannot fail halfway on bad input.</summary>
    public void Validate(GoldenCase golden, IReadOnlyList<AttentionMode> modes)
    {
        string where = $"{suite.CasesPath}: {golden.Key}";
        for (int b = 0; b < golden.Blocks.Length; b++)
        {
            CheckIds(golden.Blocks[b], $"{where}.blocks[{b}]");
        }

        foreach (var mode in modes)
        {
            var reference = golden.Reference(mode);
            string prefix = mode == AttentionMode.Full ? "full" : "block";
            CheckIds(reference.Tokens, $"{where}.{prefix}_greedy");
            if (golden.TotalLength + reference.Tokens.Length > _info.MaxPositions)
            {
                throw new InputException($"{where}: {golden.TotalLength} prompt and {reference.Tokens.Length} generated tokens exceed the model's {_info.MaxPositions} positions");
            }

            if (mode == AttentionMode.Block && golden.LogitsKeptPositions[0] < golden.TotalLength - golden.FinalBlock.Length)
            {
                throw new InputException(
                    $"{where}.logits_kept_positions: position {golden.LogitsKeptPositions[0]} lies in a local block; block attention computes logits for the final block only");
            }

            string tensor = golden.LogitsTensor(mode);
            if (!suite.Contains(tensor))
            {
                throw new InputException($"{suite.TensorsPath}: {tensor}: tensor missing");
            }
        }
    }

    /// <summary>The checks of one case, each as soon as it is done: the modes asked for, plus key re-rotation with block mode.</summary>
    public IEnumerable<CheckResult> Verify(GoldenCase golden, IReadOnlyList<AttentionMode> modes, bool viaSession)
    {
        foreach (var mode in modes)
        {
            var results = new List<CheckResult>();
            var (result, logitLimit) = mode == AttentionMode.Full ? VerifyFull(golden) : VerifyBlock(golden, results);
            yield return result;
            foreach (var extra in results)
            {
                yield return extra;
            }

            if (viaSession && golden.Reference(mode).Tokens.Length > 0)
            {
                yield return VerifySession(golden, mode, logitLimit);
            }
        }
    }

    private (CheckResult Result, double LogitLimit) VerifyFull(GoldenCase golden)
    {
        var clock = _clock.Start();
        var reference = golden.Full;
        using var cache = model.CreateCache(golden.TotalLength + reference.Tokens.Length);
        using var logits = model.Forward(golden.AllTokens(), cache, KeptRows(golden))!;
        var tokens = DecodeGreedily(logits, cache, reference.Tokens.Length);
        return Judge(golden, AttentionMode.Full, logits, tokens, clock.Elapsed);
    }

    private (CheckResult Result, double LogitLimit) VerifyBlock(GoldenCase golden, List<CheckResult> keyChecks)
    {
        var clock = _clock.Start();
        var reference = golden.Block;
        var blocks = new List<KvBlock>();
        try
        {
            KvBlock? block1 = null;
            for (int b = 0; b < golden.Blocks.Length - 1; b++)
            {
                if (golden.Blocks[b].Length == 0)
                {
                    continue; // nothing to encode or attend to, as in BlockSession
                }

                blocks.Add(Encode(golden.Blocks[b]));
                block1 = b == 1 ? blocks[^1] : block1;
            }

            using var cache = model.CreateCache(golden.TotalLength + reference.Tokens.Length);
            if (model is IKvPrefixAttention { CanAttendKvPrefix: true } && blocks.Count > 0)
            {
                cache.AttachPrefix(KvPrefix.Acquire(blocks)); // read in place by the CUDA kernels, as BlockSession does there
            }
            else
            {
                BlockAssembler.Assemble(blocks, model.Rotary, cache);
            }

            using var logits = model.Forward(golden.FinalBlock, cache, KeptRows(golden))!;
            var tokens = DecodeGreedily(logits, cache, reference.Tokens.Length);
            var judged = Judge(golden, AttentionMode.Block, logits, tokens, clock.Elapsed);
            if (golden.Block1Offset is { } offset)
            {
                keyChecks.Add(VerifyKeys(golden, offset, block1));
            }

            return judged;
        }
        finally
        {
            foreach (var block in blocks)
            {
                block.Release();
            }
        }
    }

    /// <summary>
    /// Block 1's layer-0 states against the reference's: encoded alone (keys and values at
    /// positions 0..n-1), and the reference's keys re-rotated to the block's offset.
    /// </summary>
    private CheckResult VerifyKeys(GoldenCase golden, int offset, KvBlock? encoded)
    {
        string prefix = $"{golden.Name}.block1.layer0.";
        long[] shape = [_info.KvHeads, golden.Blocks[1].Length, _info.HeadDim];
        var parts = new List<string>();
        bool passed = true;

        void Add(string label, Tensor actual, Tensor expected)
        {
            var (diff, scale) = Compare(actual, expected);
            double limit = tolerance.TensorLimit(scale);
            passed &= diff <= limit;
            parts.Add($"{label} {Within(diff, limit)}");
        }

        using var atZero = suite.Read(prefix + "k_at_zero", shape);
        if (encoded is not null)
        {
            using var keys = encoded.Keys[0];
            Add("encoded alone: k", keys, atZero);
            if (suite.Contains(prefix + "v"))
            {
                using var expectedValues = suite.Read(prefix + "v", shape);
                using var values = encoded.Values[0];
                Add("v", values, expectedValues);
            }
        }

        if (suite.Contains(prefix + "k_at_offset"))
        {
            using var expected = suite.Read(prefix + "k_at_offset", shape);
            // Rotated as the assembler does: the model's dtype and device, the model's frequencies.
            using var input = atZero.to(_info.DType, _info.Device);
            using var rotated = model.Rotary.RotateBy(input, offset);
            Add($"re-rotated to {offset}: k", rotated, expected);
        }

        return new CheckResult(golden.Name, "keys", passed, "block 1 layer 0, " + string.Join(", ", parts));
    }

    private CheckResult VerifySession(GoldenCase golden, AttentionMode mode, double logitLimit)
    {
        var clock = _clock.Start();
        var reference = golden.Reference(mode);
        using var session = new BlockSession(model);
        var options = new GenerationOptions { Mode = mode, MaxNewTokens = reference.Tokens.Length, StopTokenIds = [], StopStrings = [] };
        var prompt = BlockPrompt.FromTokenizedBlocks(golden.Blocks);
        // Off the caller's thread, so that blocking here can never wait on the caller's synchronization context.
        var result = Task.Run(() => session.GenerateAsync(prompt, options)).GetAwaiter().GetResult();
        var greedy = GreedyComparison.Compare(result.TokenIds, reference, tolerance.MarginThreshold(logitLimit));
        return new CheckResult(golden.Name, $"{ModeName(mode)}/session", greedy.Passed, greedy.ToString(), clock.Elapsed);
    }

    private (CheckResult Result, double LogitLimit) Judge(GoldenCase golden, AttentionMode mode, Tensor logits, IReadOnlyList<int> tokens, TimeSpan elapsed)
    {
        int[] kept = golden.LogitsKeptPositions;
        using var expected = suite.Read(golden.LogitsTensor(mode), kept.Length, _info.VocabSize);
        // Forward returned every row from the first kept position on; pick the kept ones.
        using var rowIndex = tensor(kept.Select(p => (long)(p - kept[0])).ToArray(), ScalarType.Int64, logits.device);
        using var rows = logits.index_select(0, rowIndex);
        var (diff, scale) = Compare(rows, expected);
        double limit = tolerance.LogitLimit(golden.Name, scale);
        var greedy = GreedyComparison.Compare(tokens, golden.Reference(mode), tolerance.MarginThreshold(limit));
        bool passed = diff <= limit && greedy.Passed;
        return (new CheckResult(golden.Name, ModeName(mode), passed, $"logits max|diff| {Within(diff, limit)}, {greedy}", elapsed), limit);
    }

    /// <summary>Greedy tokens: the first from the last prompt logits, then one forward step per token.</summary>
    private List<int> DecodeGreedily(Tensor promptLogits, KvCache cache, int steps)
    {
        var tokens = new List<int>(steps);
        if (steps == 0)
        {
            return tokens;
        }

        using (var last = promptLogits[promptLogits.shape[0] - 1])
        {
            tokens.Add(ArgMax(last));
        }

        while (tokens.Count < steps)
        {
            using var logits = model.Forward([tokens[^1]], cache, 1)!;
            using var row = logits[0];
            tokens.Add(ArgMax(row));
        }

        return tokens;
    }

    private KvBlock Encode(int[] tokens) => KvBlock.Encode(model, tokens);

    private int KeptRows(GoldenCase golden) => golden.TotalLength - golden.LogitsKeptPositions[0];

    private void CheckIds(int[] ids, string key)
    {
        int bad = Array.FindIndex(ids, id => id >= _info.VocabSize);
        if (bad >= 0)
        {
            throw new InputException($"{key}[{bad}]: token id {ids[bad]} is outside the model's vocabulary of {_info.VocabSize}");
        }
    }

    private static int ArgMax(Tensor logits)
    {
        using var best = logits.argmax();
        return (int)best.item<long>();
    }

    /// <summary>max |actual - expected| and max |expected|, in float32 on the CPU.</summary>
    private static (double Diff, double Scale) Compare(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var a = actual.to(ScalarType.Float32, CPU);
        double diff = a.sub(expected).abs_().max().item<float>();
        double scale = expected.abs().max().item<float>();
        return (diff, scale);
    }

    private static string Within(double diff, double limit) => $"{diff:0.00e+00} {(diff <= limit ? "<=" : ">")} {limit:0.0e+00}";

    private static string ModeName(AttentionMode mode) => mode == AttentionMode.Full ? "full" : "block";
}
