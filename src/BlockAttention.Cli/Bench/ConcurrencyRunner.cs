using System.Diagnostics;
using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Models;

namespace BlockAttention.Cli.Bench;

/// <summary>
/// Many requests at once: for each concurrency level, the same seeded Poisson arrivals over shared
/// passages (a warm store), each request with its own question, run against a batching session and
/// against a session that runs one request at a time, side by side.
/// </summary>
/// <remarks>
/// The client keeps at most <c>concurrency</c> requests in flight: a request that arrives while
/// that many are running is sent when one ends. TTFT runs from sending to the first token; time
/// per output token from the first token to the last, over the tokens after the first; output
/// throughput is all requests' tokens over the time from the first send to the last token.
/// </remarks>
internal sealed class ConcurrencyRunner(ICausalLanguageModel model, BenchOptions options, TextWriter progress, CancellationToken cancellationToken)
{
    private int _question = 1_000_000; // questions of their own, apart from the length sweep's

    public async Task<IReadOnlyList<ConcurrencyResult>> RunAsync(int length)
    {
        var prompt = BenchPrompt.Create(length, model.Info.VocabSize, options.Seed);
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 1L << 40 });
        var batchedOptions = new BlockSessionOptions { IdleCaches = options.MaxBatchSize, MaxBatchSize = options.MaxBatchSize, StepThreads = options.StepThreads };
        var serialOptions = new BlockSessionOptions { IdleCaches = 2, MaxBatchSize = 1, StepThreads = options.StepThreads };
        using var batched = new BlockSession(model, store, batchedOptions);
        using var serial = new BlockSession(model, store, serialOptions);
        // Warm: the passages into the store, and each session's caches and code paths.
        Report($"concurrency: warming up ({length}-token prompts; one request alone, then {Math.Min(options.MaxBatchSize, options.Concurrency.Max())} at once)");
        var warm = new GenerationOptions { MaxNewTokens = 4, StopTokenIds = [], StopStrings = [] };
        await serial.GenerateAsync(prompt.ForRequest(_question++), warm, cancellationToken);
        await Task.WhenAll(Enumerable.Range(0, Math.Min(options.MaxBatchSize, options.Concurrency.Max()))
            .Select(_ => batched.GenerateAsync(prompt.ForRequest(Interlocked.Increment(ref _question)), warm, cancellationToken)));

        Report($"concurrency: {length}-token prompts, {options.DecodeTokens} tokens each, Poisson arrivals at {options.ArrivalRate:G3}/s (seed {options.Seed}); batched (MaxBatchSize {options.MaxBatchSize}) against one at a time");
        var results = new List<ConcurrencyResult>();
        foreach (int concurrency in options.Concurrency)
        {
            int requests = options.RequestsPerLevel?[results.Count] ?? options.ConcurrencyRequests ?? Math.Max(8, 2 * concurrency);
            var arrivals = Arrivals(requests, options.ArrivalRate, options.Seed + concurrency);
            int first = _question;
            var batchedTokens = new List<int>[requests];
            var serialTokens = new List<int>[requests];
            var batchedLoad = await LoadAsync(batched, prompt, arrivals, concurrency, first, batchedTokens, $"c={concurrency} batched");
            // The batched figures first: the one-at-a-time side can take long, and a run cut short still shows them.
            Report($"  c={concurrency,3} batched: {batchedLoad.OutputTokensPerSecond:F1} tok/s, {batchedLoad.OutputTokens} tokens in {batchedLoad.WallMs / 1000:F1} s; " +
                $"TTFT p50/p95 {batchedLoad.TtftP50Ms:F0}/{batchedLoad.TtftP95Ms:F0} ms; TPOT p50/p95 {batchedLoad.TpotP50Ms:F1}/{batchedLoad.TpotP95Ms:F1} ms; now one at a time");
            var serialLoad = await LoadAsync(serial, prompt, arrivals, concurrency, first, serialTokens, $"c={concurrency} one at a time");
            _question += requests;
            var result = batchedLoad with
            {
                Concurrency = concurrency,
                Requests = requests,
                Serial = serialLoad,
                ThroughputRatio = batchedLoad.OutputTokensPerSecond / serialLoad.OutputTokensPerSecond,
            };
            Report($"  c={concurrency,3}: {result.OutputTokensPerSecond,7:F1} tok/s (one at a time {serialLoad.OutputTokensPerSecond:F1}, x{result.ThroughputRatio:F2}); " +
                $"TTFT p50/p95 {result.TtftP50Ms:F0}/{result.TtftP95Ms:F0} ms ({serialLoad.TtftP50Ms:F0}/{serialLoad.TtftP95Ms:F0}); TPOT p50/p95 {result.TpotP50Ms:F1}/{result.TpotP95Ms:F1} ms ({serialLoad.TpotP50Ms:F1}/{serialLoad.TpotP95Ms:F1})");
            if (options.CheckExact)
            {
                // Each request once more, alone on the batching session (so the same code path, one sequence per step).
                int identical = 0, serialIdentical = 0;
                string? detail = null;
                for (int i = 0; i < requests; i++)
                {
                    var alone = new List<int>();
                    await foreach (var chunk in batched.StreamAsync(prompt.ForRequest(first + i), Generation(first + i), cancellationToken))
                    {
                        if (chunk.TokenId is int id)
                        {
                            alone.Add(id);
                        }
                    }

                    if (FirstDifference(batchedTokens[i], alone) is { } at)
                    {
                        detail ??= $"request {i} ({(IsSampled(first + i) ? "sampled" : "greedy")}) differs at token {at} of {alone.Count}";
                    }
                    else
                    {
                        identical++;
                    }

                    serialIdentical += FirstDifference(serialTokens[i], alone) is null ? 1 : 0;
                }

                result = result with { ExactIdentical = identical, ExactChecked = requests, SerialIdentical = serialIdentical, ExactDetail = detail };
                Report($"  c={concurrency,3} exact: {(identical == requests ? "PASS" : "FAIL")} {identical} of {requests} requests (even greedy, odd sampled) give the same tokens batched and alone on the batching session{(detail is null ? "" : "; first: " + detail)}; " +
                    $"one-at-a-time session (plain forward pass) equal to alone: {serialIdentical} of {requests}");
            }

            results.Add(result);
        }

        return results;
    }

    /// <summary>Arrival times (seconds from the start) of a Poisson process: exponential gaps with mean 1/rate.</summary>
    internal static double[] Arrivals(int count, double rate, int seed)
    {
        var random = new Random(seed);
        var times = new double[count];
        double t = 0;
        for (int i = 0; i < count; i++)
        {
            times[i] = t;
            t += -Math.Log(1 - random.NextDouble()) / rate;
        }

        return times;
    }

    /// <summary>Percentile <paramref name="p"/> (0..100) by linear interpolation between the closest ranks.</summary>
    internal static double Percentile(IReadOnlyList<double> values, double p)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        double rank = p / 100 * (sorted.Length - 1);
        int low = (int)Math.Floor(rank);
        int high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }

    /// <summary>Index of the first token where two runs differ (a length difference included); null when equal.</summary>
    internal static int? FirstDifference(IReadOnlyList<int>? a, IReadOnlyList<int>? b)
    {
        if (a is null || b is null)
        {
            return 0;
        }

        int common = Math.Min(a.Count, b.Count);
        for (int i = 0; i < common; i++)
        {
            if (a[i] != b[i])
            {
                return i;
            }
        }

        return a.Count == b.Count ? null : common;
    }

    /// <summary>With <c>--check-exact</c> odd questions sample (their own seed); otherwise every request is greedy.</summary>
    private bool IsSampled(int question) => options.CheckExact && question % 2 == 1;

    private GenerationOptions Generation(int question) => IsSampled(question)
        ? new GenerationOptions { MaxNewTokens = Math.Max(1, options.DecodeTokens), StopTokenIds = [], StopStrings = [], Temperature = 0.8f, TopK = 50, Seed = options.Seed * 7919 + question }
        : new GenerationOptions { MaxNewTokens = Math.Max(1, options.DecodeTokens), StopTokenIds = [], StopStrings = [] };

    /// <summary>How often a concurrency level reports how far it has got (requests done, tokens, tokens per second).</summary>
    internal TimeSpan ProgressInterval { get; init; } = TimeSpan.FromSeconds(10);

    private readonly object _progressLock = new();

    /// <summary>One progress line; the periodic report writes from another thread.</summary>
    private void Report(string line)
    {
        lock (_progressLock)
        {
            progress.WriteLine(line);
        }
    }

    /// <summary>Every <see cref="ProgressInterval"/> until <paramref name="stop"/>: requests done and tokens so far, so that a run cut short still leaves figures.</summary>
    private async Task ReportProgressAsync(string label, int requests, LoadCounters counters, Stopwatch clock, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(ProgressInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                long tokens = Interlocked.Read(ref counters.Tokens);
                double seconds = clock.Elapsed.TotalSeconds;
                Report($"    {label}: {Volatile.Read(ref counters.Done)} of {requests} requests done, {tokens} tokens in {seconds:F0} s ({tokens / seconds:F1} tok/s)");
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // the level ended
        }
    }

    /// <summary>Live counts of a concurrency level, read by the progress report.</summary>
    private sealed class LoadCounters
    {
        public int Done;
        public long Tokens;
    }

    private async Task<ConcurrencyResult> LoadAsync(BlockSession session, BenchPrompt prompt, double[] arrivals, int concurrency, int firstQuestion, List<int>[] tokenIds, string label)
    {
        using var slots = new SemaphoreSlim(concurrency, concurrency);
        var ttft = new double[arrivals.Length];
        var tpot = new List<double>();
        long tokens = 0;
        var clock = Stopwatch.StartNew();
        var tasks = new List<Task>();
        var counters = new LoadCounters();
        using var stopProgress = new CancellationTokenSource();
        var reporter = ReportProgressAsync(label, arrivals.Length, counters, clock, stopProgress.Token);
        try
        {
            await SendAsync();
            await Task.WhenAll(tasks);
        }
        finally
        {
            await stopProgress.CancelAsync();
            await reporter;
        }

        double seconds = clock.Elapsed.TotalSeconds;
        return new ConcurrencyResult
        {
            OutputTokensPerSecond = tokens / seconds,
            TtftP50Ms = Percentile(ttft, 50),
            TtftP95Ms = Percentile(ttft, 95),
            TpotP50Ms = Percentile(tpot, 50),
            TpotP95Ms = Percentile(tpot, 95),
            OutputTokens = tokens,
            WallMs = seconds * 1000,
        };

        async Task SendAsync()
        {
            for (int i = 0; i < arrivals.Length; i++)
            {
                var wait = TimeSpan.FromSeconds(arrivals[i]) - clock.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }

                await slots.WaitAsync(cancellationToken);
                int index = i;
                var request = prompt.ForRequest(firstQuestion + i);
                tasks.Add(Task.Run(async () =>
                {
                    try
                    {
                        long sent = Stopwatch.GetTimestamp();
                        long firstToken = 0;
                        int count = 0;
                        var ids = new List<int>();
                        await foreach (var chunk in session.StreamAsync(request, Generation(firstQuestion + index), cancellationToken))
                        {
                            if (chunk.TokenId is int id)
                            {
                                ids.Add(id);
                                Interlocked.Increment(ref counters.Tokens);
                                if (count++ == 0)
                                {
                                    firstToken = Stopwatch.GetTimestamp();
                                }
                            }
                        }

                        tokenIds[index] = ids;
                        Interlocked.Increment(ref counters.Done);

                        long end = Stopwatch.GetTimestamp();
                        ttft[index] = Stopwatch.GetElapsedTime(sent, firstToken).TotalMilliseconds;
                        lock (tpot)
                        {
                            tokens += count;
                            if (count > 1)
                            {
                                tpot.Add(Stopwatch.GetElapsedTime(firstToken, end).TotalMilliseconds / (count - 1));
                            }
                        }
                    }
                    finally
                    {
                        slots.Release();
                    }
                }, cancellationToken));
            }
        }
    }
}
