using System.Diagnostics;
using BlockAttention.Attention;
using BlockAttention.Generation;
using BlockAttention.Models;
using BlockAttention.Runtime;
using static TorchSharp.torch;

namespace BlockAttention.Batching;

/// <summary>
/// Gathers the pending steps of a session's requests (one new token each while decoding, chunks of
/// a final block while prefilling) into one forward pass, first come first served.
/// </summary>
/// <remarks>
/// <para>
/// A worker runs while there are steps: it takes the queued steps in order (at most
/// <c>maxBatchSize</c>, and prefill chunks of at most <c>prefillChunkTokens</c> tokens in all, so
/// a long final block joins in pieces and never stalls the decoders for long), runs them through
/// <see cref="IBatchForward.ForwardBatch"/> while holding the session's model gate (other model
/// work, such as encoding a block, takes turns with batches), picks each step's token and hands it back.
/// </para>
/// <para>
/// The requests of the last batch usually come back with their next step within microseconds; the
/// worker waits for them (at most <see cref="GatherWindow"/>) rather than run a batch without them.
/// Requests submit their next step before handing the current token to their caller, so a slow
/// reader does not hold the batch up beyond that window.
/// </para>
/// </remarks>
internal sealed class StepScheduler : IDisposable
{
    private readonly ICausalLanguageModel _model;
    private readonly SemaphoreSlim _modelGate;
    private readonly int _maxBatchSize;
    private readonly int _prefillChunkTokens;
    private readonly Action<int> _recordBatch;
    private readonly int? _stepThreads;
    private readonly object _lock = new();
    private readonly LinkedList<StepEntry> _queue = new();
    private int _owing;
    private long _gatherDeadline;
    private bool _workerRunning;
    private bool _disposed;

    public StepScheduler(ICausalLanguageModel model, SemaphoreSlim modelGate, int maxBatchSize, int prefillChunkTokens, Action<int> recordBatch, int? stepThreads = null)
    {
        _model = model;
        _stepThreads = stepThreads;
        _modelGate = modelGate;
        _maxBatchSize = maxBatchSize;
        _prefillChunkTokens = prefillChunkTokens;
        _recordBatch = recordBatch;
    }

    /// <summary>How long the worker waits for the requests of the last batch to come back with their next step.</summary>
    internal TimeSpan GatherWindow { get; set; } = TimeSpan.FromMilliseconds(2);

    private readonly StepTrace? _trace = StepTrace.Enabled ? new StepTrace() : null;

    /// <summary>Steps waiting for a forward pass.</summary>
    public int QueuedSteps
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Queues one step; its task ends with the picked token (-1 when <paramref name="pick"/> is null).</summary>
    /// <exception cref="ObjectDisposedException">The scheduler (its session) was disposed.</exception>
    public StepEntry Submit(ReadOnlyMemory<int> tokens, KvCache cache, Func<Tensor, int>? pick, StepMember? member, CancellationToken cancellationToken)
    {
        var entry = new StepEntry(tokens, cache, pick, member);
        bool start;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, typeof(BlockSession));
            if (member is { Owing: true })
            {
                member.Owing = false;
                _owing--;
            }

            _queue.AddLast(entry);
            start = !_workerRunning;
            _workerRunning = true;
            Monitor.PulseAll(_lock);
        }

        entry.CancelWith(cancellationToken);
        if (start)
        {
            _ = Task.Factory.StartNew(Work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }

        return entry;
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> (a final block, say) in chunks of at most the prefill budget,
    /// each a step of its own between other requests' decode steps; the last one picks a token.
    /// </summary>
    public async Task<StepOutcome> PrefillAsync(int[] tokens, KvCache cache, Func<Tensor, int> pick, StepMember? member, CancellationToken cancellationToken)
    {
        var compute = TimeSpan.Zero;
        for (int start = 0; ; start += _prefillChunkTokens)
        {
            int count = Math.Min(_prefillChunkTokens, tokens.Length - start);
            bool last = start + count == tokens.Length;
            var entry = Submit(tokens.AsMemory(start, count), cache, last ? pick : null, member, cancellationToken);
            var outcome = await entry.Task.ConfigureAwait(false);
            compute += outcome.Compute;
            if (last)
            {
                return outcome with { Compute = compute };
            }
        }
    }

    /// <summary>The request will submit no more steps: the worker no longer waits for it.</summary>
    public void Leave(StepMember member)
    {
        lock (_lock)
        {
            member.Left = true;
            if (member.Owing)
            {
                member.Owing = false;
                _owing--;
                Monitor.PulseAll(_lock);
            }
        }
    }

    /// <summary>Fails the queued steps with <see cref="ObjectDisposedException"/>; a batch in flight completes.</summary>
    public void Dispose()
    {
        List<StepEntry> queued;
        lock (_lock)
        {
            _disposed = true;
            queued = [.. _queue];
            _queue.Clear();
            Monitor.PulseAll(_lock);
        }

        foreach (var entry in queued)
        {
            if (entry.TryTake())
            {
                entry.Fail(new ObjectDisposedException(nameof(BlockSession)));
            }
        }
    }

    private void Work()
    {
        if (_stepThreads is int threads && _model.Info.Device.type == TorchSharp.DeviceType.CPU)
        {
            // BlockSessionOptions.StepThreads: this worker only; other threads keep theirs (see IntraOpThreads).
            IntraOpThreads.SetForCurrentThread(threads);
        }

        while (true)
        {
            List<StepEntry>? batch = NextBatch();
            if (batch is null)
            {
                return;
            }

            if (batch.Count > 0)
            {
                Run(batch);
            }
        }
    }

    /// <summary>Waits for steps and takes the next batch; null when there is nothing left to do (the worker then ends).</summary>
    private List<StepEntry>? NextBatch()
    {
        lock (_lock)
        {
            while (true)
            {
                if (_disposed)
                {
                    _workerRunning = false;
                    return null;
                }

                long now = Stopwatch.GetTimestamp();
                bool gathered = _owing == 0 || now >= _gatherDeadline;
                if (_queue.Count > 0 && gathered)
                {
                    return Take();
                }

                if (_queue.Count == 0 && gathered)
                {
                    _workerRunning = false; // the next Submit starts a new worker
                    return null;
                }

                var wait = Stopwatch.GetElapsedTime(now, _gatherDeadline);
                Monitor.Wait(_lock, wait > TimeSpan.Zero ? wait : TimeSpan.FromMilliseconds(1));
            }
        }
    }

    /// <summary>The queued steps in order, within the batch limits; cancelled steps are dropped on the way.</summary>
    private List<StepEntry> Take()
    {
        var batch = new List<StepEntry>();
        int prefillTokens = 0;
        for (var node = _queue.First; node is not null && batch.Count < _maxBatchSize;)
        {
            var next = node.Next;
            var entry = node.Value;
            int tokens = entry.Tokens.Length;
            bool prefill = tokens > 1 || entry.Pick is null;
            if (!prefill || prefillTokens == 0 || prefillTokens + tokens <= _prefillChunkTokens)
            {
                _queue.Remove(node);
                if (entry.TryTake())
                {
                    batch.Add(entry);
                    prefillTokens += prefill ? tokens : 0;
                }
            }

            node = next;
        }

        return batch;
    }

    private void Run(List<StepEntry> batch)
    {
        long started = Stopwatch.GetTimestamp();
        var outcomes = new StepOutcome?[batch.Count];
        var failures = new Exception?[batch.Count];
        try
        {
            _modelGate.Wait();
        }
        catch (Exception e)
        {
            batch.ForEach(entry => entry.Fail(e));
            return;
        }

        try
        {
            RunOnModel(batch, outcomes, failures);
        }
        finally
        {
            _modelGate.Release();
        }

        var compute = Stopwatch.GetElapsedTime(started);
        _recordBatch(batch.Count);
        lock (_lock)
        {
            foreach (var member in batch.Select(e => e.Member))
            {
                if (member is { Left: false, Owing: false })
                {
                    member.Owing = true;
                    _owing++;
                }
            }

            _gatherDeadline = Stopwatch.GetTimestamp() + (long)(GatherWindow.TotalSeconds * Stopwatch.Frequency);
        }

        for (int i = 0; i < batch.Count; i++)
        {
            if (failures[i] is { } failure)
            {
                batch[i].Fail(failure);
            }
            else
            {
                batch[i].Complete(outcomes[i]!.Value with { Compute = compute });
            }
        }
    }

    /// <summary>The batch's forward pass(es) and token picks, under the model gate; each step's failure is its own.</summary>
    private void RunOnModel(List<StepEntry> batch, StepOutcome?[] outcomes, Exception?[] failures)
    {
        if (_disposed)
        {
            Array.Fill(failures, new ObjectDisposedException(nameof(BlockSession)));
            return;
        }

        var batched = new List<int>();
        for (int i = 0; i < batch.Count; i++)
        {
            // With a batch size of one nothing is batched: each step is the model's plain forward pass.
            if (_maxBatchSize > 1 && _model is IBatchForward batching && batching.CanBatch(batch[i].Cache))
            {
                batched.Add(i);
            }
            else
            {
                // A model (or cache) that cannot batch: this step alone, in its turn.
                try
                {
                    using var logits = _model.Forward(batch[i].Tokens.Span, batch[i].Cache, batch[i].LogitsToKeep);
                    outcomes[i] = Pick(batch[i], logits, 0, batch.Count);
                }
                catch (Exception e)
                {
                    failures[i] = e;
                }
            }
        }

        if (batched.Count == 0)
        {
            return;
        }

        try
        {
            long started = Stopwatch.GetTimestamp();
            var steps = batched.Select(i => new ForwardStep(batch[i].Tokens, batch[i].Cache, batch[i].LogitsToKeep)).ToList();
            using var logits = ((IBatchForward)_model).ForwardBatch(steps);
            long forwardEnd = Stopwatch.GetTimestamp();
            var rows = new int[batched.Count];
            for (int j = 1; j < batched.Count; j++)
            {
                rows[j] = rows[j - 1] + batch[batched[j - 1]].LogitsToKeep;
            }

            var greedy = GreedyPicks(batched.Select(i => batch[i]).ToList(), logits);
            void PickOne(int j)
            {
                int i = batched[j];
                try
                {
                    outcomes[i] = greedy?[rows[j]] is long best && TokenSampler.IsGreedy(batch[i].Pick)
                        ? new StepOutcome(checked((int)best), TimeSpan.Zero, batch.Count)
                        : Pick(batch[i], logits, rows[j], batch.Count);
                }
                catch (Exception e)
                {
                    failures[i] = e;
                }
            }

            if (ParallelPicks(batched.Count))
            {
                // Each pick is its own request's (its own sampler): the order they run in changes nothing.
                Parallel.For(0, batched.Count, PickOne);
            }
            else
            {
                for (int j = 0; j < batched.Count; j++)
                {
                    PickOne(j);
                }
            }

            _trace?.Record(batched.Count, started, forwardEnd, Stopwatch.GetTimestamp());
        }
        catch (Exception e)
        {
            foreach (int i in batched)
            {
                failures[i] = e;
            }
        }
    }

    /// <summary>
    /// Whether a batch's token picks run side by side: on an accelerator, where the device waits
    /// for them (a sampled pick copies its row to the CPU and works through the whole vocabulary
    /// there), so that the next step does not wait for dozens of them one after another. On the
    /// CPU the picks stay on the worker thread, which the model's work already keeps busy.
    /// </summary>
    internal bool ParallelPicks(int picks) => picks > 1 && _model.Info.Device.type != TorchSharp.DeviceType.CPU;

    /// <summary>
    /// On an accelerator, the greedy picks of a batch in one pass: the argmax of every kept row and
    /// one copy to the host, instead of a device round trip per request. The same tokens as each
    /// request's own argmax (the first largest logit). Null where fewer than two picks are greedy
    /// or the model runs on the CPU.
    /// </summary>
    private long[]? GreedyPicks(List<StepEntry> entries, Tensor? logits)
    {
        if (logits is null || _model.Info.Device.type == TorchSharp.DeviceType.CPU || entries.Count(entry => TokenSampler.IsGreedy(entry.Pick)) < 2)
        {
            return null;
        }

        using var scope = NewDisposeScope();
        return logits.argmax(1).cpu().data<long>().ToArray();
    }

    private static StepOutcome Pick(StepEntry entry, Tensor? logits, int row, int batchSize)
    {
        if (entry.Pick is null)
        {
            return new StepOutcome(-1, TimeSpan.Zero, batchSize);
        }

        using var scope = NewDisposeScope();
        return new StepOutcome(entry.Pick(logits![row]), TimeSpan.Zero, batchSize);
    }
}
