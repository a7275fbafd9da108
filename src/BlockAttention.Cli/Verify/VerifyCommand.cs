using System.Diagnostics;
using BlockAttention.Generation;

namespace BlockAttention.Cli.Verify;

/// <summary>
/// <c>blockattn verify</c>: runs every golden case on a model in full and block attention and
/// judges logits and greedy tokens against the reference's, one line per case and check.
/// </summary>
internal static class VerifyCommand
{
    // Built from the tolerance constants, so that the help can never disagree with the judging.
    public static readonly string Help = $$"""
        blockattn verify --model DIR --golden DIR [--device cpu|cuda[:N]] [--dtype float32|bfloat16]
                         [--mode full|block|both] [--session]

        Runs every case of DIR/golden.json (+ golden.safetensors; the golden folder may be the model
        folder) and compares with the reference:
          full    one causal forward pass over all the blocks' tokens, then greedy decoding
          block   each local block encoded alone at positions 0..n-1 into its own cache, assembled with
                  keys re-rotated to their offsets (BlockAssembler), the final block on top, then greedy
                  decoding: the cached inference path
          keys    with block mode, when the case has them: block 1's layer-0 keys and values encoded
                  alone, and the reference's keys re-rotated to the block's offset
          --session  also generates through BlockSession in each mode and compares its tokens
        --mode full|block|both (default both) picks the modes.

        Tolerances (each output line prints the observed number and its limit):
          float32   logits: max |diff| <= {{VerificationTolerance.Float32Logits:0e+00}} ({{VerificationTolerance.Float32LongLogits:0e+00}} for the case named '{{VerificationTolerance.LongCaseName}}'), as the
                    fixtures README says. Greedy tokens: compared step by step while the reference
                    margin (best minus second-best logit) is >= {{VerificationTolerance.Float32Margin:0e+00}}, stopping at the first smaller
                    margin (either token is then legitimate) or at the first disagreement.
                    Keys/values: max |diff| <= {{VerificationTolerance.Float32Tensors:0e+00}}.
          bfloat16  activations keep 8 significant bits, so limits scale with the numbers:
                    logits: max |diff| <= {{VerificationTolerance.BFloat16LogitsRelative}} x max(1, max |reference logit|) of that case and
                    mode. Greedy tokens: compared while the reference margin is >= 2 x that limit
                    (logits each within the limit cannot swap two tokens further apart), so few or none
                    are compared on models with small margins. Keys/values: max |diff| <=
                    {{VerificationTolerance.BFloat16TensorsRelative}} x max(1, max |reference value|).

        Exit 0 when every check passes, 1 when any fails, 2 for bad usage or input (a missing folder
        or file, a malformed golden file: the message names the file and key; CUDA unavailable).
        """;

    // After Help: static initializers run in order.
    public static Verb Verb { get; } = new("verify", """
        --model DIR --golden DIR [--device cpu|cuda] [--dtype float32|bfloat16]
        [--mode full|block|both] [--session]
        """, Help, (commandLine, stdout, _, cancellationToken) => Task.FromResult(Run(commandLine, stdout, cancellationToken)));

    public static int Run(CommandLine commandLine, TextWriter stdout, CancellationToken cancellationToken)
    {
        commandLine.RejectUnknown([.. ModelOptions.Names, "golden", "mode", "session"]);
        var modelOptions = ModelOptions.Parse(commandLine);
        string goldenDirectory = commandLine.Required("golden");
        AttentionMode[] modes = commandLine.Choice("mode", "both", "full", "block", "both") switch
        {
            "full" => [AttentionMode.Full],
            "block" => [AttentionMode.Block],
            _ => [AttentionMode.Full, AttentionMode.Block],
        };
        bool viaSession = commandLine.Flag("session");

        // Read the golden files before the model: a typo in a path should not wait for a load.
        using var suite = GoldenSuite.Open(goldenDirectory);
        var total = Stopwatch.StartNew();
        BlockAttention.Attention.Cuda.CudaKernels.Log = message => stdout.WriteLine($"kernels {message}");
        using var model = modelOptions.Load();
        var info = model.Info;
        var tolerance = VerificationTolerance.For(info.DType);
        var verifier = new CaseVerifier(model, suite, tolerance);
        foreach (var golden in suite.Cases)
        {
            verifier.Validate(golden, modes);
        }

        stdout.WriteLine($"model   {modelOptions.Directory} ({info.Family}, {info.Layers} layers, vocab {info.VocabSize}) on {info.Device}, {modelOptions.DTypeName}, loaded in {total.Elapsed.TotalSeconds:0.0} s");
        stdout.WriteLine($"golden  {suite.CasesPath} ({suite.Cases.Count} cases)");
        stdout.WriteLine($"rule    {tolerance.Describe()}");
        int width = Math.Max(4, suite.Cases.Max(c => c.Name.Length));
        int passed = 0, failed = 0;
        foreach (var golden in suite.Cases)
        {
            foreach (var result in verifier.Verify(golden, modes, viaSession))
            {
                cancellationToken.ThrowIfCancellationRequested();
                string time = result.Elapsed is { } elapsed ? $"  {elapsed.TotalMilliseconds:0} ms" : "";
                stdout.WriteLine($"{(result.Passed ? "PASS" : "FAIL")}  {result.Case.PadRight(width)}  {result.Check,-13}  {result.Detail}{time}");
                stdout.Flush();
                if (result.Passed)
                {
                    passed++;
                }
                else
                {
                    failed++;
                }
            }
        }

        stdout.WriteLine($"summary {(failed == 0 ? "PASS" : "FAIL")}: {passed} of {passed + failed} checks passed, {failed} failed " +
            $"({suite.Cases.Count} cases, {string.Join("+", modes.Select(m => m.ToString().ToLowerInvariant()))}, {modelOptions.DTypeName} on {info.Device}) in {total.Elapsed.TotalSeconds:0.0} s");
        return failed == 0 ? ExitCodes.Success : ExitCodes.CheckFailed;
    }
}
