// The program of the consumer app that eng/verify-consumer.sh creates with `dotnet new console`
// and builds against the packed BlockAttention packages. It is not part of any project here.
//
// Usage: ConsumerApp <fixture model folder> [--torch-first]
// Prints key=value lines for the script to check, and "consumer-ok" last when every check passed.
//
// Each mode is its own non-inlined method, and this top level names no BlockAttention type: the
// runtime runs an assembly's module initializer once a method that uses the assembly is compiled,
// so a BlockAttention type anywhere in the method that calls TorchSharp first would register the
// loader fix before that call and hide whether the app's own initializer did it.
using System.Runtime.CompilerServices;
using System.Text.Json;
using BlockAttention;
using BlockAttention.Generation;
using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Prompts;
using BlockAttention.Runtime;
using TorchSharp;

string fixture = args[0];
if (args.Length > 1 && args[1] == "--torch-first")
{
    TorchFirst();
    ReportLoader();
    Console.WriteLine("consumer-ok");
    return 0;
}

bool ok = await LoadAndRun(fixture);
ReportLoader();
if (ok)
{
    Console.WriteLine("consumer-ok");
}

return ok ? 0 : 1;

// TorchSharp before any BlockAttention type: BlockAttention.Core's own module initializer has not
// run, so only the one that the package's build targets add to this app can have registered the
// loader fix.
[MethodImpl(MethodImplOptions.NoInlining)]
static void TorchFirst()
{
    using var sum = torch.ones(3).sum();
    Console.WriteLine($"torch-first-sum={sum.item<float>()}");
}

[MethodImpl(MethodImplOptions.NoInlining)]
static void ReportLoader()
{
    Console.WriteLine($"host-has-GLIBCXX_3.4.32={TorchSharpNativeLibrary.HostLibStdCxxHasRequiredVersion()}");
    Console.WriteLine($"patched-copy={TorchSharpNativeLibrary.PatchedCopyPath ?? "none"}");
}

[MethodImpl(MethodImplOptions.NoInlining)]
static async Task<bool> LoadAndRun(string fixture)
{
    using var model = LlamaModel.Load(fixture);

    using var golden = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixture, "golden.json")));
    var rag = golden.RootElement.GetProperty("cases").EnumerateArray().First(c => c.GetProperty("name").GetString() == "rag");
    int[][] blocks = [.. rag.GetProperty("blocks").EnumerateArray().Select(b => b.EnumerateArray().Select(t => t.GetInt32()).ToArray())];
    int kept = rag.GetProperty("logits_kept_positions").GetArrayLength();
    bool ok = true;

    // Full attention: the logits of the last positions against transformers' (golden.safetensors).
    using (var cache = model.CreateCache(blocks.Sum(b => b.Length)))
    using (var logits = model.Forward(blocks.SelectMany(b => b).ToArray(), cache, kept)!)
    using (var reference = SafetensorsFile.Open(Path.Combine(fixture, "golden.safetensors")))
    using (var expected = torch.empty([.. reference.GetInfo("rag.full.logits").Shape], torch.ScalarType.Float32))
    {
        reference.ReadInto("rag.full.logits", expected.bytes);
        using var diff = logits.sub(expected).abs_().max();
        float maxAbsDiff = diff.item<float>();
        Console.WriteLine($"full-logits-max-abs-diff={maxAbsDiff:G3}");
        ok &= maxAbsDiff <= 1e-3f;
    }

    // Block attention through a session: the first greedy token (the reference's margin there is 0.019).
    using var session = new BlockSession(model);
    var result = await session.GenerateAsync(
        BlockPrompt.FromTokenizedBlocks(blocks),
        new GenerationOptions { MaxNewTokens = 1, StopTokenIds = [], StopStrings = [] });
    int expectedToken = rag.GetProperty("block_greedy")[0].GetInt32();
    Console.WriteLine($"block-first-token={result.TokenIds.Single()} expected={expectedToken} encoded-blocks={result.EncodedBlocks}");
    ok &= result.TokenIds.Single() == expectedToken && result.EncodedBlocks == blocks.Length - 1;

    // Plain TorchSharp once BlockAttention is in use.
    using var sum = torch.ones(3).sum();
    Console.WriteLine($"ones-sum={sum.item<float>()}");
    return ok && sum.item<float>() == 3f;
}
