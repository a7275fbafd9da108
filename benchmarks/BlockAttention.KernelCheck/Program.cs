// Exactness of the CUDA segment-attention kernel (src/BlockAttention.Core/Attention/Cuda) on
// random inputs, against an independent float64 reference: keys of each segment rotated to their
// absolute positions, queries rotated to theirs, masked softmax attention over the concatenation.
// Outputs and the kernel's partial results are poisoned with NaN first, so any element the
// kernels fail to write fails the check. Then times the kernels at the bench's shape.
// Every case runs on every kernel that takes it: the CUDA-core split kernel (fma), the tensor-core
// one (mma, bfloat16/float16) and the decode kernel (decode, at most 8 folded query rows). Batch
// cases run several sequences (sharing some cached blocks) through one decode call, check each
// against the reference and against the same sequence run alone (bit for bit).
//   usage: KernelCheck [--cases N] [--batch-cases N] [--seed S] [--quick-timings] [--out report.md]
//   (--quick-timings: only the default kernels at 4K and 32K, and the batched decode table)
using System.Diagnostics;
using System.Globalization;
using System.Text;
using BlockAttention.Attention.Cuda;
using static TorchSharp.torch;

int cases = 240, batchCases = 30, seed = 20261202;
string? outPath = null;
bool quickTimings = false;
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--cases": cases = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--batch-cases": batchCases = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--seed": seed = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--out": outPath = args[++i]; break;
        case "--quick-timings": quickTimings = true; break;
        case "--self-test": return SelfTest();
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }
}

if (!cuda.is_available())
{
    Console.Error.WriteLine("no CUDA device: this check needs a GPU");
    return 2;
}

CudaKernels.Log = m => Console.WriteLine($"[kernels] {m}");
var device = CUDA;
var report = new StringBuilder();
report.AppendLine("# Segment-attention kernel check");
report.AppendLine();
report.AppendLine($"- Date: {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; cases {cases}, seed {seed}");
report.AppendLine("- Reference: float64, keys rotated by their segment's offset, queries by their position (exact float64 angles), masked softmax over all keys.");
report.AppendLine("- Pass: |kernel - reference| <= atol + rtol * |reference| for every element (float32 1e-3 + 1e-3, float16 2e-3 + 2e-3, bfloat16 1e-2 + 1e-2), with NaN-poisoned outputs and partials.");
report.AppendLine();
report.AppendLine("Each case runs on every kernel that takes it: fma (CUDA cores, all dtypes), mma (tensor cores, bfloat16/float16, head dimension a multiple of 16), decode (at most 8 folded rows: query heads per KV head x query rows).");
report.AppendLine();
report.AppendLine("| # | dtype | kernel | d | kv heads | group | rows n | segments | keys | layer | chunks | max abs err | max rel-to-scale err | result |");
report.AppendLine("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");

var random = new Random(seed);
manual_seed(seed);
int failures = 0, runs = 0;
var worst = new Dictionary<string, double>();
ScalarType[] dtypes = [ScalarType.Float32, ScalarType.BFloat16, ScalarType.Float16];
for (int c = 0; c < cases; c++)
{
    var dtype = dtypes[c % 3];
    // The bench's and real models' 64 and 128 mostly; 8 and 16 (the fixture models', CUDA cores only) sometimes.
    int headDim = random.Next(10) switch { 0 => 8, 1 => 16, < 6 => 64, _ => 128 };
    int kvHeads = new[] { 1, 2, 4, 8 }[random.Next(4)];
    int group = 1 + random.Next(8);
    int n = random.Next(5) switch { 0 => 1, 1 => 1 + random.Next(16), 2 => 1 + random.Next(128), 3 => 128, _ => 1 + random.Next(Math.Max(1, 8 / group)) };
    int blocks = random.Next(3) switch { 0 => random.Next(4), 1 => random.Next(40), _ => random.Next(200) };
    if (c < 6)
    {
        blocks = c % 2 == 0 ? 0 : 199; // the extremes: the tail alone, and 199 blocks + the tail
    }

    int budget = 32768 - n - 64;
    var lengths = new List<int>();
    for (int b = 0; b < blocks && budget > 0; b++)
    {
        int cap = Math.Max(1, Math.Min(4096, 2 * 32768 / Math.Max(1, blocks)));
        int length = Math.Min(budget, random.Next(3) == 0 ? 1 + random.Next(8) : 1 + random.Next(cap));
        if (c == 2)
        {
            length = Math.Min(budget, 4096);
        }

        lengths.Add(length);
        budget -= length;
    }

    int tailBefore = random.Next(3) == 0 ? random.Next(300) : 0;
    var variants = new List<string> { "fma" };
    if (CudaKernels.SupportsTensorCores(dtype, headDim))
    {
        variants.Add("mma");
    }

    if (CudaKernels.SupportsDecode(dtype, headDim) && group * n <= CudaKernels.DecodeFunctions.MaxRows)
    {
        variants.Add("decode");
        variants.Add("deep");
        if (n == 1 && CudaKernels.SupportsTensorCores(dtype, headDim))
        {
            variants.Add("shared");
        }
    }

    foreach (var result in RunCase(c, dtype, variants, headDim, kvHeads, group, n, lengths, tailBefore))
    {
        report.AppendLine(result.Line);
        runs++;
        if (!result.Pass)
        {
            failures++;
        }

        worst[result.Key] = Math.Max(worst.GetValueOrDefault(result.Key), result.MaxAbs);
        Console.WriteLine(result.Line);
    }
}

report.AppendLine();
report.AppendLine($"**{runs - failures} of {runs} kernel runs ({cases} cases) pass.** Largest absolute error per dtype and kernel: "
    + string.Join(", ", worst.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key} {kv.Value:E2}")) + ".");
report.AppendLine();
report.AppendLine("## Batched decode: several sequences in one call");
report.AppendLine();
report.AppendLine("Sequences share some cached blocks (the same tensors, read in place by each) and have their own tails. Reference: float64 per sequence; solo: the same sequence alone through the decode kernel, which must match the batched rows bit for bit.");
report.AppendLine();
report.AppendLine("| # | dtype | kernel | d | kv heads | group | rows n | sequences | keys (max) | chunks | max abs err | vs reference | vs solo (bitwise) |");
report.AppendLine("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
int batchFailures = 0;
for (int c = 0; c < batchCases; c++)
{
    var line = RunBatchCase(c);
    report.AppendLine(line.Line);
    Console.WriteLine(line.Line);
    if (!line.Pass)
    {
        batchFailures++;
    }
}

report.AppendLine();
report.AppendLine($"**{batchCases - batchFailures} of {batchCases} batch cases pass.**");
failures += batchFailures;
report.AppendLine();
report.AppendLine(Timing());
Console.WriteLine(failures == 0 ? "all kernel runs and batch cases pass" : $"{failures} kernel runs or batch cases FAIL");
if (outPath is not null)
{
    File.WriteAllText(outPath, report.ToString());
}

return failures == 0 ? 0 : 1;

List<(bool Pass, double MaxAbs, string Key, string Line)> RunCase(int index, ScalarType dtype, List<string> variants, int headDim, int kvHeads, int group, int n, List<int> lengths, int tailBefore)
{
    using var scope = NewDisposeScope();
    var kernels = CudaKernels.TryGet(device, dtype, headDim) ?? throw new InvalidOperationException($"kernels unavailable: {CudaKernels.Status}");
    int heads = kvHeads * group, layers = 2, layer = random.Next(2);
    var frequencies = Frequencies(headDim, random.Next(2) == 0 ? 10000.0 : 500000.0);
    using var attention = new SegmentAttention(kernels, frequencies, heads, kvHeads, headDim, dtype, device) { PoisonPartials = true };

    var segments = new List<KvSegment>();
    int position = 0;
    foreach (int length in lengths)
    {
        // Cached blocks as the store keeps them: [layers, kvHeads, n, d], rotated for 0..n-1.
        var keys = randn([layers, kvHeads, length, headDim], dtype, device);
        var values = randn([layers, kvHeads, length, headDim], dtype, device);
        segments.Add(new KvSegment(keys, values, length, position, RotationBase: position));
        position += length;
    }

    // The tail: a request cache with spare capacity, holding earlier tail tokens and the n queries' keys.
    int tailLength = tailBefore + n, capacity = tailLength + random.Next(64);
    var tailKeys = randn([layers, kvHeads, capacity, headDim], dtype, device);
    var tailValues = randn([layers, kvHeads, capacity, headDim], dtype, device);
    segments.Add(new KvSegment(tailKeys, tailValues, tailLength, position, RotationBase: 0));
    int queryPosition = position + tailBefore;
    int total = position + tailLength;

    var qkv = randn([n, heads + 2 * kvHeads, headDim], dtype, device);
    var reference = Reference(qkv.narrow(1, 0, heads), segments, layer, frequencies, queryPosition, total, kvHeads, group, headDim);
    var results = new List<(bool, double, string, string)>();
    foreach (string variant in variants)
    {
        attention.UseTensorCores = variant is "mma" or "shared";
        attention.UseDecodeKernel = variant is "decode" or "deep" or "shared";
        attention.UseSharedDecode = variant == "shared";
        attention.DecodeDeep = variant == "deep";
        attention.DecodeTile = variant == "deep" ? new[] { 16, 32, 64 }[index % 3] : DecodeTiling.Tile;
        var output = full([n, heads * headDim], double.NaN, dtype, device);
        string ran = "?";
        int chunks = 0;
        string error = "";
        try
        {
            using var plan = attention.Plan(segments, n, queryPosition);
            ran = plan.Kernel;
            chunks = plan.Chunks;
            plan.Attend(qkv, layer, output);
            cuda.synchronize();
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            error = e.Message;
        }

        var (pass, maxAbs, text) = Compare(output, reference, dtype);
        pass &= ran == variant && error.Length == 0;
        string line = $"| {index} | {dtype} | {variant}{(ran == variant ? "" : $" (ran {ran}{(error.Length > 0 ? ": " + error.ReplaceLineEndings(" ") : "")})")} | {headDim} | {kvHeads} | {group} | {n} | {lengths.Count} + tail {tailLength} | {total} | {layer} | {chunks} | "
            + $"{text} | {(pass ? "pass" : "**FAIL**")} |";
        results.Add((pass, maxAbs, $"{dtype}/{variant}", line));
    }

    return results;
}

static (bool Pass, double MaxAbs, string Text) Compare(Tensor output, Tensor reference, ScalarType dtype)
{
    var got = output.to(ScalarType.Float64);
    var (atol, rtol) = dtype switch { ScalarType.Float32 => (1e-3, 1e-3), ScalarType.Float16 => (2e-3, 2e-3), _ => (1e-2, 1e-2) };
    var error = got.sub(reference).abs();
    bool finite = got.isfinite().all().item<bool>();
    double maxAbs = finite ? error.max().item<double>() : double.PositiveInfinity;
    bool pass = finite && error.le(reference.abs().mul(rtol).add(atol)).all().item<bool>();
    double scale = Math.Max(1e-12, reference.abs().max().item<double>());
    string text = finite
        ? $"{maxAbs.ToString("E2", CultureInfo.InvariantCulture)} | {(maxAbs / scale).ToString("E2", CultureInfo.InvariantCulture)}"
        : "NaN | NaN";
    return (pass, maxAbs, text);
}

// Whether two tensors hold the same values element for element (same shape, no NaN anywhere; the
// float64 conversion is exact for float32/bfloat16/float16, so this is bit equality up to the sign of zero).
static bool SameValues(Tensor a, Tensor b)
{
    if (!a.shape.SequenceEqual(b.shape))
    {
        return false;
    }

    using var scope = NewDisposeScope();
    var x = a.to(ScalarType.Float64);
    var y = b.to(ScalarType.Float64);
    return x.isfinite().all().item<bool>() && y.isfinite().all().item<bool>() && x.eq(y).all().item<bool>();
}

// The harness's own comparisons on CPU tensors (no GPU needed): --self-test.
static int SelfTest()
{
    using var scope = NewDisposeScope();
    int failed = 0;
    void Expect(bool got, bool want, string what)
    {
        Console.WriteLine($"{(got == want ? "ok  " : "FAIL")} {what}: {got}");
        failed += got == want ? 0 : 1;
    }

    foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16, ScalarType.Float16 })
    {
        var a = randn([6, 40], ScalarType.Float32).to(dtype);
        var b = a.clone();
        Expect(SameValues(a.narrow(0, 2, 3), b.narrow(0, 2, 3)), true, $"{dtype} same rows");
        var c = a.clone();
        c[4, 7] = c[4, 7].add(1);
        Expect(SameValues(a, c), false, $"{dtype} one element differs");
        Expect(SameValues(a.narrow(0, 0, 4), c.narrow(0, 0, 4)), true, $"{dtype} rows before the difference");
        var nan = a.clone();
        nan[0, 0] = tensor(double.NaN).to(dtype);
        Expect(SameValues(nan, nan.clone()), false, $"{dtype} NaN never equal");
        Expect(SameValues(a, a.narrow(0, 0, 5)), false, $"{dtype} shapes differ");
        var reference = a.to(ScalarType.Float64);
        Expect(Compare(a, reference, dtype).Pass, true, $"{dtype} compare exact");
        Expect(Compare(c, reference, dtype).Pass, false, $"{dtype} compare off by 1");
        Expect(Compare(nan, reference, dtype).Pass, false, $"{dtype} compare NaN");
    }

    Console.WriteLine(failed == 0 ? "self-test PASS" : $"self-test FAIL ({failed})");
    return failed == 0 ? 0 : 1;
}

// Several sequences in one decode call: shared cached blocks (a pool of tensors, each sequence a
// random selection in its own order, so one block sits at different offsets), each its own tail.
(bool Pass, string Line) RunBatchCase(int index)
{
    using var scope = NewDisposeScope();
    var dtype = new[] { ScalarType.Float32, ScalarType.BFloat16, ScalarType.Float16 }[index % 3];
    int headDim = random.Next(4) switch { 0 => 8, 1 => 64, _ => 128 };
    int kvHeads = new[] { 1, 2, 8 }[random.Next(3)];
    int group = new[] { 1, 2, 4, 8 }[random.Next(4)];
    int n = random.Next(3) == 0 ? 1 + random.Next(Math.Max(1, 8 / group)) : 1;
    int sequences = index == 0 ? 64 : 1 + random.Next(24);
    int layers = 2, layer = random.Next(2), heads = kvHeads * group;
    var kernels = CudaKernels.TryGet(device, dtype, headDim) ?? throw new InvalidOperationException($"kernels unavailable: {CudaKernels.Status}");
    var frequencies = Frequencies(headDim, 500000.0);
    bool deep = index % 2 == 1;
    using var attention = new SegmentAttention(kernels, frequencies, heads, kvHeads, headDim, dtype, device)
    {
        PoisonPartials = true,
        DecodeDeep = deep,
        DecodeTile = deep ? (index % 4 == 1 ? 32 : 64) : DecodeTiling.Tile,
        DecodeBlocksPerMultiprocessor = 8,
        UseSharedDecode = index % 4 != 3, // bfloat16/float16 decode steps: the shared kernel, every fourth case the decode kernel
    };
    bool common = index % 5 == 2; // every sequence the same blocks at the same offsets, as requests over one set of passages
    var pool = Enumerable.Range(0, 1 + random.Next(12)).Select(_ =>
    {
        int length = random.Next(3) == 0 ? 1 + random.Next(8) : 1 + random.Next(index == 0 ? 600 : 1500);
        return (Keys: randn([layers, kvHeads, length, headDim], dtype, device), Values: randn([layers, kvHeads, length, headDim], dtype, device), Length: length);
    }).ToList();

    var perSequence = new List<IReadOnlyList<KvSegment>>();
    var positions = new List<int>();
    var totals = new List<int>();
    int maxKeys = 0;
    for (int q = 0; q < sequences; q++)
    {
        var list = new List<KvSegment>();
        int position = 0;
        foreach (var block in common ? pool : pool.OrderBy(_ => random.Next()).Take(random.Next(pool.Count + 1)))
        {
            list.Add(new KvSegment(block.Keys, block.Values, block.Length, position, position));
            position += block.Length;
        }

        int tailBefore = random.Next(2) == 0 ? random.Next(200) : 0;
        int tailLength = tailBefore + n;
        list.Add(new KvSegment(randn([layers, kvHeads, tailLength + 8, headDim], dtype, device), randn([layers, kvHeads, tailLength + 8, headDim], dtype, device), tailLength, position, 0));
        perSequence.Add(list);
        positions.Add(position + tailBefore);
        totals.Add(position + tailLength);
        maxKeys = Math.Max(maxKeys, position + tailLength);
    }

    var qkv = randn([sequences * n, heads + 2 * kvHeads, headDim], dtype, device);
    var output = full([sequences * n, heads * headDim], double.NaN, dtype, device);
    string error = "";
    int chunks = 0;
    bool pass = true, solo = true;
    double maxAbs = 0;
    string kernel = "?";
    try
    {
        using (var plan = attention.PlanBatch(perSequence, n, positions))
        {
            chunks = plan.Chunks;
            kernel = plan.Kernel;
            plan.Attend(qkv, layer, output);
        }

        for (int q = 0; q < sequences; q++)
        {
            var rows = qkv.narrow(0, q * n, n);
            var reference = Reference(rows.narrow(1, 0, heads), [.. perSequence[q]], layer, frequencies, positions[q], totals[q], kvHeads, group, headDim);
            var (ok, abs, _) = Compare(output.narrow(0, q * n, n), reference, dtype);
            pass &= ok;
            maxAbs = Math.Max(maxAbs, abs);
            var alone = full([n, heads * headDim], double.NaN, dtype, device);
            using (var plan = attention.PlanBatch([perSequence[q]], n, [positions[q]]))
            {
                plan.Attend(rows.contiguous(), layer, alone);
            }

            solo &= SameValues(alone, output.narrow(0, q * n, n));
        }

        cuda.synchronize();
    }
    catch (Exception e) when (e is InvalidOperationException or ArgumentException)
    {
        error = e.Message.ReplaceLineEndings(" ");
        pass = false;
        solo = false;
    }

    string line = $"| {index} | {dtype} | {(kernel == "deep" ? $"deep, tile {attention.DecodeTile}" : kernel)}{(common ? ", common prefix" : "")} | {headDim} | {kvHeads} | {group} | {n} | {sequences} | {maxKeys} | {chunks} | "
        + $"{(error.Length > 0 ? error : maxAbs.ToString("E2", CultureInfo.InvariantCulture))} | {(pass ? "pass" : "**FAIL**")} | {(solo ? "identical" : "**DIFFERS**")} |";
    return (pass && solo, line);
}

static Tensor Reference(Tensor queries, List<KvSegment> segments, int layer, float[] frequencies, int queryPosition, int total, int kvHeads, int group, int headDim)
{
    var device = queries.device;
    long n = queries.shape[0];
    var f = tensor(frequencies.Select(x => (double)x).ToArray(), ScalarType.Float64, device);
    var keyParts = new List<Tensor>();
    var valueParts = new List<Tensor>();
    foreach (var segment in segments)
    {
        var k = segment.Keys[layer].narrow(1, 0, segment.Length).to(ScalarType.Float64);
        var v = segment.Values[layer].narrow(1, 0, segment.Length).to(ScalarType.Float64);
        // Stored key j is rotated for position keyPosition + j - rotationBase: rotate by rotationBase.
        var angle = f.mul((double)segment.RotationBase).unsqueeze(0);
        keyParts.Add(Rotate(k, angle));
        valueParts.Add(v);
    }

    var keys = cat(keyParts, 1);     // [kv, T, d]
    var values = cat(valueParts, 1);
    var positions = arange(queryPosition, queryPosition + n, dtype: ScalarType.Float64, device: device);
    var q = Rotate(queries.to(ScalarType.Float64), positions.unsqueeze(1).mul(f.unsqueeze(0)).unsqueeze(1)); // [n, heads, d]
    var folded = q.view(n, kvHeads, group, headDim).permute(1, 2, 0, 3).reshape(kvHeads, group * n, headDim);
    var scores = folded.matmul(keys.transpose(1, 2)).div(Math.Sqrt(headDim)); // [kv, g*n, T]
    var keyPositions = arange(total, dtype: ScalarType.Int64, device: device).unsqueeze(0);
    var rowPositions = arange(queryPosition, queryPosition + n, dtype: ScalarType.Int64, device: device).repeat(group).unsqueeze(1);
    scores = scores.masked_fill(keyPositions.gt(rowPositions).unsqueeze(0), double.NegativeInfinity);
    var attended = scores.softmax(-1).matmul(values); // [kv, g*n, d]
    return attended.view(kvHeads, group, n, headDim).permute(2, 0, 1, 3).reshape(n, kvHeads * group * headDim);
}

// Half-split RoPE: x1 cos - x2 sin, x2 cos + x1 sin, angles [.., d/2] broadcast over x [.., d].
static Tensor Rotate(Tensor x, Tensor angle)
{
    long half = x.shape[^1] / 2;
    var x1 = x.narrow(-1, 0, half);
    var x2 = x.narrow(-1, half, half);
    var cos = angle.cos();
    var sin = angle.sin();
    return cat([x1.mul(cos).sub(x2.mul(sin)), x2.mul(cos).add(x1.mul(sin))], -1);
}

static float[] Frequencies(int headDim, double theta)
{
    var result = new float[headDim / 2];
    for (int i = 0; i < result.Length; i++)
    {
        result[i] = (float)(1.0 / Math.Pow(theta, 2.0 * i / headDim));
    }

    return result;
}

// Kernel time at the bench's shape (Llama-3.1-8B: 32 heads, 8 KV heads of 128, bf16; passages
// of ~300 tokens, a 50-token final block, then decode steps), per layer.
string Timing()
{
    var sb = new StringBuilder();
    sb.AppendLine("## Kernel time at the bench's shape (one layer; Llama-3.1-8B heads, bf16)");
    sb.AppendLine();
    sb.AppendLine("| kernel | cached tokens | passages | query rows | chunks | split + combine us | KV read GB/s |");
    sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
    var kernels = CudaKernels.TryGet(device, ScalarType.BFloat16, 128)!;
    using var attention = new SegmentAttention(kernels, Frequencies(128, 500000), 32, 8, 128, ScalarType.BFloat16, device);
    // Decode configurations: (kernel, tile keys, blocks per multiprocessor); the first is the default.
    var decodeConfigs = new (string Kernel, int Tile, int Blocks)[] { ("decode", 16, 8), ("deep", 16, 8), ("deep", 32, 8), ("deep", 64, 8), ("deep", 16, 16), ("deep", 32, 16), ("decode", 32, 8), ("decode", 16, 16) };
    foreach (var (variant, tile, blocks) in new (string, int, int)[] { ("mma", 0, 0), ("fma", 0, 0), ("shared", 0, 0) }.Concat(decodeConfigs).Take(quickTimings ? 4 : int.MaxValue))
    foreach (int tokens in quickTimings ? new[] { 4096, 32768 } : new[] { 2048, 4096, 8192, 16384, 32768 })
    {
        attention.UseTensorCores = variant is "mma" or "shared";
        attention.UseDecodeKernel = variant is "decode" or "deep" or "shared";
        attention.UseSharedDecode = variant == "shared";
        attention.DecodeDeep = variant == "deep";
        attention.DecodeTile = tile > 0 ? tile : DecodeTiling.Tile;
        attention.DecodeBlocksPerMultiprocessor = blocks > 0 ? blocks : 8;
        string label = tile > 0 ? $"{variant} t{tile} b{blocks}" : variant;
        foreach (int n in attention.UseDecodeKernel ? new[] { 1 } : new[] { 50, 1 })
        {
            using var scope = NewDisposeScope();
            int passages = Math.Max(1, tokens / 300);
            var segments = new List<KvSegment>();
            int position = 0;
            for (int p = 0; p < passages; p++)
            {
                int length = p == passages - 1 ? tokens - position : 300;
                segments.Add(new KvSegment(randn([32, 8, length, 128], ScalarType.BFloat16, device), randn([32, 8, length, 128], ScalarType.BFloat16, device), length, position, position));
                position += length;
            }

            segments.Add(new KvSegment(randn([32, 8, 128, 128], ScalarType.BFloat16, device), randn([32, 8, 128, 128], ScalarType.BFloat16, device), n, position, 0));
            var qkv = randn([n, 48, 128], ScalarType.BFloat16, device);
            var output = empty([n, 32 * 128], ScalarType.BFloat16, device);
            using var plan = attention.Plan(segments, n, position);
            for (int i = 0; i < 20; i++)
            {
                plan.Attend(qkv, i % 32, output);
            }

            cuda.synchronize();
            const int runs = 200;
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < runs; i++)
            {
                plan.Attend(qkv, i % 32, output);
            }

            cuda.synchronize();
            double us = clock.Elapsed.TotalMicroseconds / runs;
            double bytes = 2.0 * (tokens + n) * 8 * 128 * 2;
            sb.AppendLine($"| {(plan.Kernel == variant ? label : $"{label} (ran {plan.Kernel})")} | {tokens} | {passages} | {n} | {plan.Chunks} | {us:F1} | {bytes / (us * 1e-6) / 1e9:F0} |");
        }
    }

    sb.AppendLine();
    sb.AppendLine("## Batched decode time (one layer; each sequence: the same 4096 tokens of cached passages, shared, + its own 100-token tail; one query row)");
    sb.AppendLine();
    sb.AppendLine("| kernel | sequences | chunks | batched us | us per sequence | solo us (one sequence) | KV read GB/s (as if unshared) |");
    sb.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
    foreach (var (variant, tile) in new[] { ("shared", 0), ("decode", 16), ("deep", 32) })
    {
        attention.UseTensorCores = true;
        attention.UseSharedDecode = variant == "shared";
        attention.DecodeDeep = variant == "deep";
        attention.DecodeTile = tile > 0 ? tile : DecodeTiling.Tile;
        attention.DecodeBlocksPerMultiprocessor = 8;
        using var scope = NewDisposeScope();
        var shared = new List<KvSegment>();
        int position = 0;
        for (int p = 0; p < 14; p++)
        {
            int length = p == 13 ? 4096 - position : 300;
            shared.Add(new KvSegment(randn([32, 8, length, 128], ScalarType.BFloat16, device), randn([32, 8, length, 128], ScalarType.BFloat16, device), length, position, position));
            position += length;
        }

        double solo = 0;
        foreach (int sequences in new[] { 1, 4, 16, 64 })
        {
            using var inner = NewDisposeScope();
            var lists = new List<IReadOnlyList<KvSegment>>();
            for (int q = 0; q < sequences; q++)
            {
                lists.Add([.. shared, new KvSegment(randn([32, 8, 128, 128], ScalarType.BFloat16, device), randn([32, 8, 128, 128], ScalarType.BFloat16, device), 100, position, 0)]);
            }

            var qkv = randn([sequences, 48, 128], ScalarType.BFloat16, device);
            var output = empty([sequences, 32 * 128], ScalarType.BFloat16, device);
            try
            {
                using var plan = attention.PlanBatch(lists, 1, [.. Enumerable.Repeat(position + 99, sequences)]);
                for (int i = 0; i < 10; i++)
                {
                    plan.Attend(qkv, i % 32, output);
                }

                cuda.synchronize();
                int runs = sequences >= 16 ? 50 : 200;
                var clock = Stopwatch.StartNew();
                for (int i = 0; i < runs; i++)
                {
                    plan.Attend(qkv, i % 32, output);
                }

                cuda.synchronize();
                double us = clock.Elapsed.TotalMicroseconds / runs;
                if (sequences == 1)
                {
                    solo = us;
                }

                double bytes = 2.0 * sequences * (4096 + 100) * 8 * 128 * 2;
                sb.AppendLine($"| {plan.Kernel}{(tile > 0 ? $" t{tile}" : "")} | {sequences} | {plan.Chunks} | {us:F1} | {us / sequences:F2} | {solo:F1} | {bytes / (us * 1e-6) / 1e9:F0} |");
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException)
            {
                sb.AppendLine($"| {variant} t{tile} | {sequences} | - | failed: {e.Message.ReplaceLineEndings(" ")} | | | |");
            }
        }
    }

    return sb.ToString();
}
