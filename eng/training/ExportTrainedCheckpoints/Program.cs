// Trains fixture Llamas a few steps (full fine-tuning and LoRA, untied and tied embeddings, float32
// and bfloat16 checkpoints) and writes, per case, the saved checkpoint and the float32 CPU logits
// that our two loaders give for it: the inference model (LlamaModel, causal) and the trainable
// model reloaded from the checkpoint (causal, and with a block mask). check_trained_in_transformers.py
// compares them with transformers' LlamaForCausalLM on the same files.
//
//   dotnet run -c Release --project eng/training/ExportTrainedCheckpoints -- [--fixtures tests/fixtures] --out DIR
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using BlockAttention.Llama;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Training;
using BlockAttention.Training.Data;
using BlockAttention.Training.Modeling;
using static TorchSharp.torch;

var opt = args.Select((a, i) => (a, i)).Where(p => p.a.StartsWith("--", StringComparison.Ordinal))
    .ToDictionary(p => p.a[2..], p => p.i + 1 < args.Length ? args[p.i + 1] : "");
string fixtures = Path.GetFullPath(opt.GetValueOrDefault("fixtures", "tests/fixtures"));
string outDir = Path.GetFullPath(opt.TryGetValue("out", out var o) && o.Length > 0 ? o : throw new ArgumentException("--out DIR is required"));
BlockAttention.Runtime.TorchSharpNativeLibrary.EnsureRegistered();
set_num_threads(1);
if (Directory.Exists(outDir) && Directory.EnumerateFileSystemEntries(outDir).Any())
{
    throw new IOException($"{outDir} is not empty; give a new folder");
}

Directory.CreateDirectory(outDir);
var manifest = new JsonArray();
var llama2Batch = TrainingSampleFile.Read(Path.Combine(fixtures, "training", "batch-tiny-llama2.jsonl"));
var llama3Batch = TrainingSampleFile.Read(Path.Combine(fixtures, "training", "batch-tiny-llama3.jsonl"));

// 1. Llama-2 layout, untied lm_head, every weight trained, float32 checkpoint.
Export("llama2-full", TrainableLlama.Load(Path.Combine(fixtures, "tiny-llama2")), llama2Batch, lr: 1e-2, lora: null, ScalarType.Float32);
// 2. The same model, LoRA on every projection (attention and MLP), saved merged.
Export("llama2-lora-merged", TrainableLlama.Load(Path.Combine(fixtures, "tiny-llama2")), llama2Batch, lr: 3e-2,
    new LoraOptions { Rank = 4, Alpha = 8, Targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] }, ScalarType.Float32);
// 3. A model trained from scratch with tied embeddings (config.json written by us, not copied).
var scratch = new LlamaConfig
{
    VocabSize = 320, HiddenSize = 64, IntermediateSize = 160, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, HeadDim = 16,
    RmsNormEps = 1e-5, MaxPositionEmbeddings = 256, TieWordEmbeddings = true, EosTokenIds = [319], Rope = new RopeSettings { Theta = 10000, Type = RopeType.Default },
};
Export("scratch-tied-full", TrainableLlama.CreateRandom(scratch, 7), llama2Batch, lr: 1e-2, lora: null, ScalarType.Float32);
// 4. Llama 3.1 layout (tied embeddings, llama3 RoPE scaling, 128K vocabulary), LoRA merged, bfloat16 checkpoint.
Export("llama3-lora-merged-bf16", TrainableLlama.Load(Path.Combine(fixtures, "tiny-llama3")), llama3Batch, lr: 3e-2,
    new LoraOptions { Rank = 4, Alpha = 8 }, ScalarType.BFloat16);

File.WriteAllText(Path.Combine(outDir, "manifest.json"), new JsonObject { ["cases"] = manifest }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
Console.WriteLine($"wrote {manifest.Count} cases to {outDir}");

void Export(string name, TrainableLlama model, List<TrainingSample> batch, double lr, LoraOptions? lora, ScalarType saveDType)
{
    using var _ = model;
    string work = Path.Combine(outDir, name + ".work"), dir = Path.Combine(outDir, name);
    var options = new TrainerOptions { Steps = 4, BatchSize = batch.Count, MicroBatchSize = batch.Count, LearningRate = lr, WarmupRatio = 0, Lora = lora, SaveDType = saveDType, Seed = 1 };
    new Trainer(model, options).Train(batch, null, work);
    // Keep only what transformers needs: the config and the weights (the tokenizer files are not needed for logits).
    Directory.CreateDirectory(dir);
    foreach (string file in new[] { "config.json", "model.safetensors" })
    {
        File.Move(Path.Combine(work, file), Path.Combine(dir, file));
    }

    Directory.Delete(work, recursive: true);
    int vocab = model.Config.VocabSize;
    var rng = new Random(name.Length * 7919);
    int[] Tokens(int n) => [.. Enumerable.Range(0, n).Select(_ => rng.Next(vocab))];
    // Prompts: two causal ones, and one with local blocks of 4, 3 and 5 tokens before a final block of 6.
    var prompts = new List<(int[] Ids, int[] Local)> { (Tokens(9), []), (Tokens(17), []), (Tokens(18), [4, 3, 5]) };
    using var inference = LlamaModel.Load(dir);
    using var reloaded = TrainableLlama.Load(dir);
    using var noGrad = no_grad();
    var tensors = new Dictionary<string, Tensor>();
    var promptJson = new JsonArray();
    using var scope = NewDisposeScope();
    // A 128K vocabulary makes full logit rows large: keep the last position there, every position otherwise.
    for (int p = 0; p < prompts.Count; p++)
    {
        var (ids, local) = prompts[p];
        int keep = vocab > 4096 ? 1 : ids.Length;
        using var mask = TrainingMask.Allowed(ids.Length, local, CPU);
        var trainable = reloaded.Forward(ids, mask).narrow(0, ids.Length - keep, keep).contiguous();
        tensors[$"prompt{p}.trainable"] = trainable;
        if (local.Length == 0)
        {
            using var cache = inference.CreateCache(ids.Length);
            tensors[$"prompt{p}.inference"] = inference.Forward(ids, cache, logitsToKeep: keep)!.reshape(keep, vocab).contiguous();
        }

        promptJson.Add(new JsonObject
        {
            ["input_ids"] = new JsonArray([.. ids.Select(i => (JsonNode)i)]),
            ["local_block_lengths"] = new JsonArray([.. local.Select(i => (JsonNode)i)]),
            ["kept_positions"] = new JsonArray([.. Enumerable.Range(ids.Length - keep, keep).Select(i => (JsonNode)i)]),
        });
    }

    SafetensorsWriter.Write(Path.Combine(dir, "ours.safetensors"), tensors);
    long bytes = new DirectoryInfo(dir).EnumerateFiles().Sum(f => f.Length);
    manifest.Add(new JsonObject
    {
        ["name"] = name, ["dir"] = name, ["lora"] = lora is not null, ["tied"] = model.Config.TieWordEmbeddings,
        ["save_dtype"] = saveDType == ScalarType.BFloat16 ? "bfloat16" : "float32", ["vocab_size"] = vocab, ["prompts"] = promptJson,
    });
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {bytes / 1e6:F1} MB"));
}
