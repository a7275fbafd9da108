using BlockAttention.Attention;
using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Models;

namespace BlockAttention.Cli.Bench;

/// <summary>
/// Measures one prompt length: full-attention TTFT, block TTFT with a warm and with a cold store,
/// re-encoding + assembly alone, the final block's forward pass alone, and decode speed.
/// </summary>
/// <remarks>
/// Every measurement is warmed up, then repeated; each request asks a new question over the same
/// passages, so nothing but the passages' states is reused between requests. Requests go through
/// <see cref="BlockSession"/>, as an application's would; the two "alone" figures call the pieces
/// the session calls, to show where block TTFT goes.
/// </remarks>
internal sealed class BenchRunner(ICausalLanguageModel model, BenchOptions options, TextWriter progress, CancellationToken cancellationToken)
{
    private static readonly GenerationOptions s_firstToken = new() { MaxNewTokens = 1 };

    private readonly DeviceClock _clock = new(model.Info.Device);
    private int _requests;

    public async Task<LengthResult> RunAsync(int length)
    {
        var prompt = BenchPrompt.Create(length, model.Info.VocabSize, options.Seed);
        ProcessMemory.ResetPeak();
        var contention = CpuContention.Start();

        using var fullSession = new BlockSession(model);
        var full = await RepeatRequestsAsync(length, "full", fullSession, s_firstToken with { Mode = AttentionMode.Full }, prompt,
            result => result.ComputedPromptTokens == length);
        var cold = await RepeatAsync(length, "block, cold store", async () =>
        {
            // A new store for every request: each passage is encoded, then stored, as on a first visit.
            using var store = NewStore();
            using var coldSession = new BlockSession(model, store);
            return await RequestAsync(coldSession, s_firstToken, prompt, result => result.EncodedBlocks == result.LocalBlocks);
        });

        using var warmStore = NewStore();
        using var session = new BlockSession(model, warmStore);
        await RequestAsync(session, s_firstToken, prompt, result => result.EncodedBlocks == result.LocalBlocks);
        var warm = await RepeatRequestsAsync(length, "block, all passages cached", session, s_firstToken, prompt,
            result => result.ReusedBlocks == result.LocalBlocks);

        var blocks = await AcquireAsync(warmStore, prompt);
        Summary reencode, reencodeReused, finalForward;
        try
        {
            if (ReadsBlocksInPlace)
            {
                // What the session does instead of re-encoding: reference the blocks from the request's cache.
                using var tail = model.CreateCache(prompt.Length - prompt.CachedTokens);
                reencode = Repeat(length, "segment table", () => _clock.Time(() =>
                {
                    tail.AttachPrefix(KvPrefix.Acquire(blocks));
                    tail.DetachPrefix();
                }));
                return await FinishAsync(length, prompt, full, cold, warm, session, reencode, null, FinalForwardInPlace(length, prompt, blocks), contention);
            }

            // As the session does it: a new cache per request.
            reencode = Repeat(length, "re-encoding + assembly", () =>
            {
                using var cache = model.CreateCache(prompt.Length);
                return _clock.Time(() => BlockAssembler.Assemble(blocks, model.Rotary, cache));
            });
            using (var reused = model.CreateCache(prompt.Length))
            {
                reencodeReused = Repeat(length, "re-encoding + assembly, reused cache", () =>
                {
                    reused.Truncate(0);
                    return _clock.Time(() => BlockAssembler.Assemble(blocks, model.Rotary, reused));
                });
            }

            finalForward = FinalForward(length, prompt, blocks);
        }
        finally
        {
            foreach (var block in blocks)
            {
                block.Release();
            }
        }

        return await FinishAsync(length, prompt, full, cold, warm, session, reencode, reencodeReused, finalForward, contention);
    }

    /// <summary>True when the model reads cached blocks in place (CUDA kernels): the session then builds a segment table instead of re-encoding.</summary>
    public bool ReadsBlocksInPlace => model is IKvPrefixAttention { CanAttendKvPrefix: true };

    private async Task<LengthResult> FinishAsync(int length, BenchPrompt prompt, (Summary Ttft, Summary Wall) full, List<(double Ttft, double Wall)> cold,
        (Summary Ttft, Summary Wall) warm, BlockSession session, Summary reencode, Summary? reencodeReused, Summary finalForward, CpuContention? contention)
    {
        var decode = await DecodeAsync(length, session, prompt);
        if (contention?.OthersShare() is double others && others > 0.1)
        {
            progress.WriteLine($"  {length,6} note: other processes used {others:P0} of the CPU meanwhile; these timings are contended");
        }

        return new LengthResult
        {
            Tokens = length,
            Passages = prompt.Passages.Count,
            CachedTokens = prompt.CachedTokens,
            FullTtft = full.Ttft,
            FullWall = full.Wall,
            BlockTtft = warm.Ttft,
            BlockWall = warm.Wall,
            ColdTtft = Summary.Of([.. cold.Select(c => c.Ttft)]),
            ColdWall = Summary.Of([.. cold.Select(c => c.Wall)]),
            Reencode = reencode,
            ReencodeReusedCache = reencodeReused,
            FinalForward = finalForward,
            DecodeTokensPerSecond = decode,
            KvBytes = model.Info.KvBytesPerToken * length,
            PeakRssBytes = ProcessMemory.PeakBytes(),
            GpuUsedBytes = GpuUsedBytes(),
            OtherCpuShare = contention?.OthersShare(),
        };
    }

    /// <summary>
    /// Consecutive block requests over the same passages with new questions, recording the
    /// resident set (and device memory) at the start, after warm-up and at the end.
    /// </summary>
    /// <remarks>
    /// No GC is forced before a reading: tensors that were not disposed are freed only by their
    /// finalizers, and forcing a collection would hide exactly that kind of leak.
    /// </remarks>
    public async Task<SoakResult> SoakAsync(int length, int requests)
    {
        var prompt = BenchPrompt.Create(length, model.Info.VocabSize, options.Seed);
        int warmup = Math.Max(1, requests / 10);
        long rssStart = ProcessMemory.CurrentBytes();
        long? gpuStart = GpuUsedBytes();
        long rssWarm = 0;
        long? gpuWarm = null;
        var samples = new List<long>();
        var ttft = new List<double>();
        using var store = NewStore();
        using var session = new BlockSession(model, store);
        await RequestAsync(session, s_firstToken, prompt, result => result.EncodedBlocks == result.LocalBlocks);
        progress.WriteLine($"soak: {requests} block requests at {length} tokens ({warmup} warm-up)");
        for (int i = 0; i < requests; i++)
        {
            var (time, _) = await RequestAsync(session, s_firstToken, prompt, result => result.ReusedBlocks == result.LocalBlocks);
            if (i >= warmup)
            {
                ttft.Add(time);
            }

            if (i == warmup - 1)
            {
                rssWarm = ProcessMemory.CurrentBytes();
                gpuWarm = GpuUsedBytes();
            }

            if ((i + 1) % Math.Max(1, requests / 10) == 0)
            {
                samples.Add(ProcessMemory.CurrentBytes());
            }
        }

        return new SoakResult
        {
            Requests = requests,
            WarmupRequests = warmup,
            Tokens = length,
            RssStartBytes = rssStart,
            RssAfterWarmupBytes = rssWarm,
            RssEndBytes = ProcessMemory.CurrentBytes(),
            GpuStartBytes = gpuStart,
            GpuAfterWarmupBytes = gpuWarm,
            GpuEndBytes = GpuUsedBytes(),
            RssSamples = samples,
            BlockTtft = Summary.Of(ttft),
        };
    }

    public long? GpuUsedBytes() => model.Info.Device.type == TorchSharp.DeviceType.CUDA
        ? CudaDriver.MemoryInfo(Math.Max(0, (int)model.Info.Device.index))?.Used
        : null;

    /// <summary>
    /// <paramref name="requests"/> block requests at once over the same passages (a warm store),
    /// each with its own question, decoding the bench's token count; device memory before and after.
    /// </summary>
    public async Task<ConcurrentResult> ConcurrentAsync(int length, int requests)
    {
        var prompt = BenchPrompt.Create(length, model.Info.VocabSize, options.Seed);
        using var store = NewStore();
        using var session = new BlockSession(model, store, idleCaches: requests);
        await RequestAsync(session, s_firstToken, prompt, result => result.EncodedBlocks == result.LocalBlocks);
        var decodeOptions = new GenerationOptions { MaxNewTokens = Math.Max(1, options.DecodeTokens), StopTokenIds = [], StopStrings = [] };
        await session.GenerateAsync(prompt.ForRequest(_requests++), decodeOptions); // warm: one request's caches exist
        long? before = GpuUsedBytes();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var results = await Task.WhenAll(Enumerable.Range(0, requests)
            .Select(_ => prompt.ForRequest(Interlocked.Increment(ref _requests)))
            .Select(request => Task.Run(() => session.GenerateAsync(request, decodeOptions))));
        _clock.Synchronize();
        double wall = clock.Elapsed.TotalMilliseconds;
        if (results.Any(r => r.ReusedBlocks != r.LocalBlocks))
        {
            throw new InvalidOperationException("a concurrent request did not reuse every passage");
        }

        var concurrent = new ConcurrentResult
        {
            Requests = requests,
            Tokens = length,
            PassageKvBytes = model.Info.KvBytesPerToken * prompt.CachedTokens,
            GpuBeforeBytes = before,
            GpuAfterBytes = GpuUsedBytes(),
            WallMs = wall,
        };
        progress.WriteLine($"  {length,6} concurrent: {requests} requests in {wall:F0} ms, GPU {before >> 20} -> {concurrent.GpuAfterBytes >> 20} MiB (passages' KV {concurrent.PassageKvBytes >> 20} MiB)");
        return concurrent;
    }

    private Summary FinalForwardInPlace(int length, BenchPrompt prompt, IReadOnlyList<KvBlock> blocks)
    {
        using var cache = model.CreateCache(prompt.Length - prompt.CachedTokens);
        return Repeat(length, "final block forward", () =>
        {
            // A fresh tail over the same passages for each question, as a request has.
            cache.Truncate(0);
            cache.AttachPrefix(KvPrefix.Acquire(blocks));
            int[] question = prompt.Question(_requests++);
            return _clock.Time(() =>
            {
                using var logits = model.Forward(question, cache, logitsToKeep: 1);
            });
        });
    }

    private Summary FinalForward(int length, BenchPrompt prompt, IReadOnlyList<KvBlock> blocks)
    {
        using var cache = model.CreateCache(prompt.Length);
        BlockAssembler.Assemble(blocks, model.Rotary, cache);
        return Repeat(length, "final block forward", () =>
        {
            // Drop the previous question's states, keep the assembled passages.
            cache.Truncate(prompt.CachedTokens);
            int[] question = prompt.Question(_requests++);
            return _clock.Time(() =>
            {
                using var logits = model.Forward(question, cache, logitsToKeep: 1);
            });
        });
    }

    private async Task<Summary> DecodeAsync(int length, BlockSession session, BenchPrompt prompt)
    {
        if (options.DecodeTokens == 0)
        {
            return Summary.Of([]);
        }

        // No stop token: random weights may well pick end-of-text, and every run must decode N tokens.
        var decodeOptions = new GenerationOptions { MaxNewTokens = options.DecodeTokens + 1, StopTokenIds = [], StopStrings = [] };
        var rates = new List<double>();
        for (int i = 0; i < options.Warmup + options.Repeats; i++)
        {
            var result = await session.GenerateAsync(prompt.ForRequest(_requests++), decodeOptions, cancellationToken);
            if (result.TokenIds.Count != options.DecodeTokens + 1)
            {
                throw new InvalidOperationException($"decode produced {result.TokenIds.Count} tokens, expected {options.DecodeTokens + 1}");
            }

            if (i >= options.Warmup)
            {
                rates.Add(result.TokensPerSecond);
            }
        }

        var summary = Summary.Of(rates);
        progress.WriteLine($"  {length,6} decode: {summary.Median:F1} tokens/s");
        return summary;
    }

    /// <summary>A store with room for every passage of the longest prompt: nothing is evicted during a run.</summary>
    private static MemoryKvBlockStore NewStore() => new(new MemoryKvBlockStoreOptions { MaxBytes = 1L << 40 });

    private async Task<List<KvBlock>> AcquireAsync(IKvBlockStore store, BenchPrompt prompt)
    {
        var blocks = new List<KvBlock>();
        foreach (int[] tokens in prompt.LocalBlocks)
        {
            var key = BlockKey.For(model.Info.Fingerprint, tokens);
            blocks.Add(await store.TryGetAsync(key, tokens, cancellationToken) ?? throw new InvalidOperationException($"block {key} is not in the store"));
        }

        return blocks;
    }

    private async Task<(Summary Ttft, Summary Wall)> RepeatRequestsAsync(int length, string what, BlockSession session, GenerationOptions generation,
        BenchPrompt prompt, Func<GenerationResult, bool> expected)
    {
        var runs = await RepeatAsync(length, what, () => RequestAsync(session, generation, prompt, expected));
        return (Summary.Of([.. runs.Select(r => r.Ttft)]), Summary.Of([.. runs.Select(r => r.Wall)]));
    }

    /// <summary>One request for the first token: TTFT as the session reports it, and wall clock around the call.</summary>
    private async Task<(double Ttft, double Wall)> RequestAsync(BlockSession session, GenerationOptions generation, BenchPrompt prompt,
        Func<GenerationResult, bool> expected)
    {
        var (wall, result) = await _clock.TimeAsync(() => session.GenerateAsync(prompt.ForRequest(_requests++), generation, cancellationToken));
        if (!expected(result))
        {
            // A benchmark that silently measured something else is worse than none.
            throw new InvalidOperationException(
                $"unexpected request: {result.Mode}, {result.ReusedBlocks} reused / {result.EncodedBlocks} encoded of {result.LocalBlocks} blocks, {result.ComputedPromptTokens} computed tokens");
        }

        return (result.TimeToFirstToken.TotalMilliseconds, wall);
    }

    private async Task<List<(double Ttft, double Wall)>> RepeatAsync(int length, string what, Func<Task<(double Ttft, double Wall)>> run)
    {
        var samples = new List<(double, double)>();
        for (int i = 0; i < options.Warmup + options.Repeats; i++)
        {
            var sample = await run();
            if (i >= options.Warmup)
            {
                samples.Add(sample);
            }
        }

        progress.WriteLine($"  {length,6} {what}: {Summary.Of([.. samples.Select(s => s.Item1)]).Median:F1} ms");
        return samples;
    }

    private Summary Repeat(int length, string what, Func<double> run)
    {
        var samples = new List<double>();
        for (int i = 0; i < options.Warmup + options.Repeats; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            double sample = run();
            if (i >= options.Warmup)
            {
                samples.Add(sample);
            }
        }

        var summary = Summary.Of(samples);
        progress.WriteLine($"  {length,6} {what}: {summary.Median:F1} ms");
        return summary;
    }
}
