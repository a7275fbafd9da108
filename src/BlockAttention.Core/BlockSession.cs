using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using BlockAttention.Attention;
using BlockAttention.Batching;
using BlockAttention.Caching;
using BlockAttention.Diagnostics;
using BlockAttention.Generation;
using BlockAttention.Models;
using BlockAttention.Prompts;
using BlockAttention.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace BlockAttention;

/// <summary>
/// Runs prompts made of blocks on one model, reusing the encoded states of local blocks across
/// requests through an <see cref="IKvBlockStore"/>.
/// </summary>
/// <remarks>
/// <para>
/// Block mode, per request: tokenize each block on its own; look each local block up in the store
/// (by model fingerprint and exact token ids) and encode only the misses, alone, from position 0;
/// rotate each block's keys to its offset in the prompt and write keys and values into one
/// preallocated KV cache; run the final block on top; decode.
/// </para>
/// <para>
/// Concurrency: one session and one model serve any number of concurrent requests, and each
/// request gets the same result as it would alone. Up to <see cref="BlockSessionOptions.MaxBatchSize"/>
/// requests run at once, later ones wait in arrival order. Their decode steps, and the chunks of
/// their final blocks, are batched: one forward pass computes a new token for every decoding
/// request, each attending to its own KV cache (on models that implement
/// <see cref="IBatchForward"/>; others take the steps one by one). Tokenization, store lookups and
/// bookkeeping run in parallel; other uses of the model (encoding a block, assembly, a full-attention
/// prompt) take turns with the batches through a gate, so the device is never oversubscribed. Two
/// requests missing the same block at the same time may both encode it; the store keeps one.
/// </para>
/// </remarks>
public sealed partial class BlockSession : IDisposable
{
    private readonly ICausalLanguageModel _model;
    private readonly IKvBlockStore? _store;
    private readonly SemaphoreSlim _modelGate = new(1, 1);
    private readonly KvCachePool _caches;
    private readonly StepScheduler _scheduler;
    private readonly AdmissionQueue _admission;
    private readonly ILogger _logger;
    private readonly SessionTelemetry _telemetry;
    private volatile bool _disposed;

    /// <summary>A session over <paramref name="model"/>, reusing blocks through <paramref name="store"/> (none: every block is encoded every time).</summary>
    /// <param name="model">The model; the session does not own it.</param>
    /// <param name="store">Where encoded blocks are kept for later requests; the session does not own it.</param>
    /// <param name="idleCaches">Request KV caches kept for reuse between requests (their memory stays allocated while idle).</param>
    public BlockSession(ICausalLanguageModel model, IKvBlockStore? store = null, int idleCaches = 2)
        : this(model, store, new BlockSessionOptions { IdleCaches = idleCaches })
    {
    }

    /// <summary>A session over <paramref name="model"/> and <paramref name="store"/> (neither owned by it), with logging and metrics as <paramref name="options"/> say.</summary>
    public BlockSession(ICausalLanguageModel model, IKvBlockStore? store, BlockSessionOptions options)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(options.IdleCaches, "IdleCaches");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxBatchSize, "MaxBatchSize");
        if (options.StepThreads is int stepThreads)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(stepThreads, "StepThreads");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(options.MaxQueuedRequests, "MaxQueuedRequests");
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.PrefillChunkTokens, "PrefillChunkTokens");
        if (options.MaxCacheBytes is long maxCacheBytes)
        {
            ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxCacheBytes, "MaxCacheBytes");
        }

        _store = store;
        _caches = new KvCachePool(model, options.IdleCaches, options.MaxCacheBytes);
        _admission = new AdmissionQueue(options.MaxBatchSize, options.MaxQueuedRequests);
        _logger = options.LoggerFactory?.CreateLogger<BlockSession>() ?? (ILogger)NullLogger.Instance;
        _telemetry = new SessionTelemetry(options.MeterFactory, store, new SessionLoad(() => _admission.Active, () => _admission.Queued, () => _caches.RentedBytes));
        _scheduler = new StepScheduler(model, _modelGate, options.MaxBatchSize, options.PrefillChunkTokens, _telemetry.RecordBatch, options.StepThreads);
    }

    /// <summary>The model this session runs.</summary>
    public ICausalLanguageModel Model => _model;

    /// <summary>The store this session reuses blocks through, or null.</summary>
    public IKvBlockStore? Store => _store;

    /// <summary>
    /// The most mask elements one chunk of a <see cref="AttentionMode.BlockOnePass"/> prefill may
    /// build: the prompt runs in chunks of query rows, each with its rows of the block mask, so the
    /// mask never grows with the square of the prompt. Results do not depend on it (attention is
    /// causal: a row never looks at a later position). Settable for tests.
    /// </summary>
    internal long OnePassMaskElements { get; set; } = 1L << 24;

    /// <summary>Requests waiting for a place among the running ones (for tests).</summary>
    internal int QueuedRequests => _admission.Queued;

    /// <summary>Generates a completion of <paramref name="prompt"/>.</summary>
    /// <exception cref="ArgumentException">
    /// The prompt or options are invalid: more text than <see cref="GenerationOptions.MaxPromptCharacters"/> (checked
    /// before tokenization), empty final block, longer than the model's positions, bad option values.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The session, its model or its store was disposed (also while the request ran).</exception>
    public async Task<GenerationResult> GenerateAsync(BlockPrompt prompt, GenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        GenerationResult? result = null;
        await foreach (var chunk in StreamAsync(prompt, options, cancellationToken).ConfigureAwait(false))
        {
            result = chunk.Result ?? result;
        }

        return result ?? throw new InvalidOperationException("generation ended without a result");
    }

    /// <summary>
    /// Generates a completion of <paramref name="prompt"/> piece by piece. Text is emitted only when
    /// final: never half a UTF-8 character, never the start of a possible stop string. The last
    /// chunk carries the <see cref="GenerationResult"/>.
    /// </summary>
    /// <remarks>
    /// Generation ends at <see cref="GenerationOptions.MaxNewTokens"/> or when the sequence reaches
    /// the model's positions (<see cref="ModelInfo.MaxPositions"/>), whichever comes first, with
    /// <see cref="FinishReason.Length"/>.
    /// </remarks>
    /// <exception cref="ArgumentException">The prompt or options are invalid (see <see cref="GenerateAsync"/>); thrown before any work.</exception>
    /// <exception cref="ObjectDisposedException">The session, its model or its store was disposed (also while the request ran).</exception>
    public async IAsyncEnumerable<GenerationChunk> StreamAsync(BlockPrompt prompt, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ObjectDisposedException.ThrowIf(_disposed, this);
        options ??= new GenerationOptions();
        options.Validate();
        ValidateStopTokens(options);
        var clock = Stopwatch.StartNew();
        using var span = SessionTelemetry.StartSpan(BlockAttentionDiagnostics.GenerateActivity);
        span?.SetTag(BlockAttentionDiagnostics.ModeTag, SessionTelemetry.ModeName(options.Mode));
        var timings = new TimingsBuilder();
        TokenizedPrompt request;
        using (SessionTelemetry.StartSpan(BlockAttentionDiagnostics.TokenizeActivity, span))
        {
            request = TokenizedPrompt.Create(prompt, _model.Tokenizer, _model.Info.MaxPositions, options.PromptCharacterLimit(_model.Info.MaxPositions));
        }

        timings.Tokenize = clock.Elapsed;
        span?.SetTag("blockattention.prompt_tokens", request.TotalLength);
        // In 64 bits: MaxNewTokens may be anything up to int.MaxValue. The last generated token is
        // never fed back, hence - 1; the prompt itself fits (TokenizedPrompt checked it).
        int capacity = (int)Math.Min((long)request.TotalLength + options.MaxNewTokens - 1, _model.Info.MaxPositions);
        var stopTokens = new HashSet<int>(options.StopTokenIds ?? _model.Info.EndOfSequenceTokenIds);
        var sampler = new TokenSampler(options);

        // Where the model reads cached blocks in place, the request's cache holds only its own
        // positions (the final block and the generated tokens); the blocks are its prefix.
        int ownCapacity = ReadsBlocksInPlace(options) ? capacity - (request.TotalLength - request.FinalBlock.Length) : Math.Max(capacity, request.TotalLength);
        // A place among the requests running at once, then cache memory: each waits its turn.
        await _admission.EnterAsync(cancellationToken).ConfigureAwait(false);
        KvCache? cache = null;
        var member = new StepMember();
        Task<StepOutcome>? pending = null;
        StepEntry? pendingEntry = null;
        try
        {
            cache = await _caches.RentAsync(ownCapacity, cancellationToken).ConfigureAwait(false);
            var prefill = await Logged(PrefillAsync(request, options, cache, sampler.Next, member, timings, span, cancellationToken)).ConfigureAwait(false);
            var timeToFirstToken = clock.Elapsed;
            span?.SetTag("blockattention.reused_blocks", prefill.ReusedBlocks);
            span?.SetTag("blockattention.encoded_blocks", prefill.EncodedBlocks);

            // Without a tokenizer (a token-ids-only checkpoint) the result has token ids and no text.
            var decoder = _model.Tokenizer is { } tokenizer ? new StreamingTextDecoder(tokenizer) : null;
            var stops = new StopStringMatcher(options.StopStrings ?? prompt.StopStrings);
            var tokens = new List<int>();
            var text = new StringBuilder();
            int emitted = 0;
            FinishReason? finish = null;
            int next = prefill.FirstToken;
            using var decodeSpan = SessionTelemetry.StartSpan(BlockAttentionDiagnostics.DecodeActivity, span);
            while (true)
            {
                if (stopTokens.Contains(next))
                {
                    finish = FinishReason.EndOfSequence;
                    break;
                }

                tokens.Add(next);
                if (stops.AppendAndCut(text, decoder?.Append(next)))
                {
                    finish = FinishReason.StopString;
                    break;
                }

                // The cache holds the prompt and every generated token but the last; at capacity
                // either MaxNewTokens is reached or the model has no position left. With cached
                // blocks read in place, the prompt's passages are the cache's prefix.
                bool more = tokens.Count < options.MaxNewTokens && cache.PrefixLength + cache.Length < capacity;
                if (more)
                {
                    // The next step joins the batch before this token reaches the caller: a slow
                    // reader does not hold the other requests' steps back.
                    pendingEntry = _scheduler.Submit(new[] { next }, cache, sampler.Next, member, cancellationToken);
                    pending = pendingEntry.Task;
                }

                int safe = stops.SafeLength(text);
                if (safe > emitted)
                {
                    yield return new GenerationChunk(text.ToString(emitted, safe - emitted), next);
                    emitted = safe;
                }
                else
                {
                    yield return new GenerationChunk("", next);
                }

                if (!more)
                {
                    finish = FinishReason.Length;
                    break;
                }

                var step = await Logged(pending!).ConfigureAwait(false);
                pending = null;
                cancellationToken.ThrowIfCancellationRequested(); // cancelled while its step ran
                timings.Decode += step.Compute;
                next = step.Token;
            }

            _scheduler.Leave(member);
            if (finish != FinishReason.StopString && stops.AppendAndCut(text, decoder?.Flush()))
            {
                finish = FinishReason.StopString;
            }

            decodeSpan?.SetTag("blockattention.generated_tokens", tokens.Count);
            string final = text.ToString();
            var result = new GenerationResult
            {
                Text = final,
                TokenIds = tokens,
                FinishReason = finish!.Value,
                Mode = options.Mode,
                TimeToFirstToken = timeToFirstToken,
                TotalTime = clock.Elapsed,
                PromptTokens = request.TotalLength,
                ComputedPromptTokens = prefill.ComputedTokens,
                LocalBlocks = request.LocalBlocks.Count,
                ReusedBlocks = prefill.ReusedBlocks,
                EncodedBlocks = prefill.EncodedBlocks,
                Blocks = prefill.Blocks,
                Timings = timings.Build(),
            };
            _telemetry.RecordRequest(result);
            yield return new GenerationChunk(emitted < final.Length ? final[emitted..] : "", null, result);
        }
        finally
        {
            _scheduler.Leave(member);
            if (pending is not null && !pendingEntry!.TryCancel())
            {
                // The step is in a forward pass, writing into the cache: let it end before the cache is reused.
                await pending.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
            }

            if (cache is not null)
            {
                _caches.Return(cache);
            }

            _admission.Exit();
        }
    }

    /// <summary>
    /// Each block's token count as a request would tokenize it, without generating or touching the
    /// model or the store. Unlike a request, a prompt longer than the model's positions is counted,
    /// not refused (see <see cref="PromptTokenCounts.Fits"/>).
    /// </summary>
    /// <exception cref="InvalidOperationException">A block is text and the model has no tokenizer.</exception>
    public PromptTokenCounts CountTokens(BlockPrompt prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var counts = prompt.Blocks.Select(b => b.Tokens?.Count ?? TokenizedPrompt.Encode(b.Text!, _model.Tokenizer).Length).ToList();
        return new PromptTokenCounts(counts, counts.Sum(c => (long)c), _model.Info.MaxPositions);
    }

    /// <summary>
    /// Encodes blocks the store does not hold yet and stores them, so that later requests find
    /// them (for example, passages at ingestion time). Runs through the same model gate as requests,
    /// so it can run while the session serves. A block is looked up exactly as a request's local block.
    /// </summary>
    /// <exception cref="InvalidOperationException">The session has no store.</exception>
    /// <exception cref="ArgumentException">A block is longer than the model's positions (or its text than <see cref="GenerationOptions.DefaultPromptCharactersPerPosition"/> per position).</exception>
    public async Task<PrecomputeResult> PrecomputeAsync(IEnumerable<PromptBlock> blocks, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var store = _store ?? throw new InvalidOperationException("this session has no block store: there is nowhere to keep precomputed blocks");
        var list = blocks.ToList();
        using var span = SessionTelemetry.StartSpan(BlockAttentionDiagnostics.PrecomputeActivity);
        int encoded = 0, already = 0, stored = 0;
        long encodedTokens = 0;
        for (int index = 0; index < list.Count; index++)
        {
            var block = list[index] ?? throw new ArgumentException($"block {index} is null", nameof(blocks));
            long characterLimit = (long)_model.Info.MaxPositions * GenerationOptions.DefaultPromptCharactersPerPosition;
            if (block.Text is { Length: var characters } && characters > characterLimit)
            {
                throw new ArgumentException($"block {index} has {characters} characters, more than the limit of {characterLimit} for this model", nameof(blocks));
            }

            int[] tokens = block.Tokens is { } ids ? [.. ids] : TokenizedPrompt.Encode(block.Text!, _model.Tokenizer);
            if (tokens.Length == 0)
            {
                continue;
            }

            if (tokens.Length > _model.Info.MaxPositions)
            {
                throw new ArgumentException($"block {index} has {tokens.Length} tokens, more than the model's {_model.Info.MaxPositions} positions", nameof(blocks));
            }

            var key = BlockKey.For(_model.Info.Fingerprint, tokens);
            var found = await TryLookupAsync(store, key, tokens, index, span, cancellationToken).ConfigureAwait(false);
            if (found is not null)
            {
                found.Release();
                already++;
                continue;
            }

            var encodeTime = TimeSpan.Zero;
            var encodedBlock = await OnModelAsync(() =>
            {
                var clock = Stopwatch.StartNew();
                using var encodeSpan = SessionTelemetry.StartSpan(BlockAttentionDiagnostics.EncodeActivity, span);
                var fresh = KvBlock.Encode(_model, tokens);
                encodeTime = clock.Elapsed;
                return fresh;
            }, cancellationToken).ConfigureAwait(false);
            try
            {
                (store as IKvBlockEncodingObserver)?.OnBlockEncoded(tokens.Length, encodeTime);
                encoded++;
                encodedTokens += tokens.Length;
                if (await TryStoreAsync(store, encodedBlock, index).ConfigureAwait(false))
                {
                    stored++;
                }
            }
            finally
            {
                encodedBlock.Release();
            }
        }

        _telemetry.RecordPrecomputed(encoded);
        span?.SetTag("blockattention.encoded_blocks", encoded);
        return new PrecomputeResult(list.Count, encoded, already, encodedTokens, stored);
    }

    /// <summary>Precomputes block texts (each tokenized on its own, as a request's block would be).</summary>
    public Task<PrecomputeResult> PrecomputeAsync(IEnumerable<string> blocks, CancellationToken cancellationToken = default) =>
        PrecomputeAsync((blocks ?? throw new ArgumentNullException(nameof(blocks))).Select(PromptBlock.FromText), cancellationToken);

    /// <summary>
    /// Precomputes retrieved passages as <see cref="BlockPrompt.ForRag"/> and chat passages
    /// (<see cref="ChatPart.Passage(RagPassage)"/>) write them, so later requests over them find them stored.
    /// </summary>
    public Task<PrecomputeResult> PrecomputeAsync(IEnumerable<RagPassage> passages, CancellationToken cancellationToken = default) =>
        PrecomputeAsync((passages ?? throw new ArgumentNullException(nameof(passages))).Select(RagPromptTemplate.RenderPassage), cancellationToken);

    /// <summary>
    /// Frees the request caches kept for reuse. Requests still running end with
    /// <see cref="ObjectDisposedException"/> at their next step on the model (their caches and
    /// blocks are freed as they leave). The model and the store are the caller's.
    /// </summary>
    public void Dispose()
    {
        _disposed = true;
        _scheduler.Dispose();
        _caches.Dispose();
        _telemetry.Dispose();
    }

    /// <summary>
    /// The logits (float32, on the CPU) from which the first token would be chosen: the same
    /// prefill as a request, store and all. For tests that compare modes and runs numerically.
    /// </summary>
    internal async Task<float[]> FirstTokenLogitsAsync(BlockPrompt prompt, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        options.Validate();
        var request = TokenizedPrompt.Create(prompt, _model.Tokenizer, _model.Info.MaxPositions, options.PromptCharacterLimit(_model.Info.MaxPositions));
        using var cache = _model.CreateCache(request.TotalLength);
        float[]? logits = null;
        await PrefillAsync(request, options, cache, row =>
        {
            using var cpu = row.to(ScalarType.Float32, CPU);
            logits = cpu.data<float>().ToArray();
            return 0;
        }, null, new TimingsBuilder(), null, cancellationToken).ConfigureAwait(false);
        return logits!;
    }

    private async Task<PrefillOutcome> PrefillAsync(TokenizedPrompt request, GenerationOptions options, KvCache cache, Func<Tensor, int> pick,
        StepMember? member, TimingsBuilder timings, Activity? span, CancellationToken cancellationToken)
    {
        if (options.Mode == AttentionMode.Block)
        {
            return await PrefillBlocksAsync(request, options, cache, pick, member, timings, span, cancellationToken).ConfigureAwait(false);
        }

        return await OnModelAsync(() =>
        {
            var clock = Stopwatch.StartNew();
            using var finalSpan = SessionTelemetry.StartSpan(BlockAttentionDiagnostics.FinalBlockActivity, span);
            int[] all = request.AllTokens();
            using var logits = options.Mode == AttentionMode.BlockOnePass
                ? ForwardOnePass(all, request.BlockLengths(), cache)
                : _model.Forward(all, cache, 1)!;
            using var last = logits[0];
            int first = pick(last);
            timings.FinalBlock = clock.Elapsed;
            var blocks = request.LocalBlocks.Select((b, i) => new BlockReport(i, b.Length, b.Length == 0 ? BlockOutcome.Empty : BlockOutcome.Computed))
                .Append(new BlockReport(request.LocalBlocks.Count, request.FinalBlock.Length, BlockOutcome.Final)).ToList();
            return new PrefillOutcome(first, all.Length, ReusedBlocks: 0, EncodedBlocks: 0, blocks); // no block is encoded on its own
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The prompt as one sequence under the block mask, in chunks of query rows: each chunk
    /// attends to the cache written by the chunks before it, with its own rows of the mask built
    /// on the model's device. Exact, because no row attends to a later position.
    /// </summary>
    private Tensor ForwardOnePass(int[] all, IReadOnlyList<int> blockLengths, KvCache cache)
    {
        int rows = (int)Math.Clamp(OnePassMaskElements / all.Length, 1, all.Length);
        for (int start = 0; ; start += rows)
        {
            int count = Math.Min(rows, all.Length - start);
            bool last = start + count == all.Length;
            using var mask = BlockMask.CreateRows(blockLengths, start, count, _model.Info.Device);
            var logits = _model.Forward(all.AsSpan(start, count), cache, last ? 1 : 0, mask);
            if (last)
            {
                return logits!;
            }
        }
    }

    private async Task<PrefillOutcome> PrefillBlocksAsync(TokenizedPrompt request, GenerationOptions options, KvCache cache, Func<Tensor, int> pick,
        StepMember? member, TimingsBuilder timings, Activity? span, CancellationToken cancellationToken)
    {
        var blocks = new List<KvBlock>(request.LocalBlocks.Count);
        var reports = new List<BlockReport>(request.LocalBlocks.Count + 1);
        int reused = 0, encoded = 0, computed = request.FinalBlock.Length;
        try
        {
            for (int index = 0; index < request.LocalBlocks.Count; index++)
            {
                int[] tokens = request.LocalBlocks[index];
                if (tokens.Length == 0)
                {
                    reports.Add(new BlockReport(index, 0, BlockOutcome.Empty));
                    continue; // nothing to encode, nothing to attend to
                }

                var key = BlockKey.For(_model.Info.Fingerprint, tokens);
                var lookupClock = Stopwatch.StartNew();
                var block = _store is null ? null : await TryLookupAsync(_store, key, tokens, index, span, cancellationToken).ConfigureAwait(false);
                timings.Lookup += lookupClock.Elapsed;
                if (block is not null)
                {
                    reused++;
                    reports.Add(new BlockReport(index, tokens.Length, BlockOutcome.Reused));
                }
                else
                {
                    var encodeTime = TimeSpan.Zero;
                    block = await OnModelAsync(() =>
                    {
                        var clock = Stopwatch.StartNew();
                        using var encodeSpan = SessionTelemetry.StartSpan(BlockAttentionDiagnostics.EncodeActivity, span);
                        encodeSpan?.SetTag("blockattention.block_tokens", tokens.Length);
                        var fresh = KvBlock.Encode(_model, tokens);
                        encodeTime = clock.Elapsed;
                        timings.Encode += encodeTime;
                        return fresh;
                    }, cancellationToken).ConfigureAwait(false);
                    blocks.Add(block); // from here on the finally releases it, whatever the store does
                    (_store as IKvBlockEncodingObserver)?.OnBlockEncoded(tokens.Length, encodeTime);
                    encoded++;
                    computed += tokens.Length;
                    reports.Add(new BlockReport(index, tokens.Length, BlockOutcome.Encoded));
                    if (_store is not null && options.StoreEncodedBlocks)
                    {
                        var storeClock = Stopwatch.StartNew();
                        await TryStoreAsync(_store, block, index).ConfigureAwait(false);
                        timings.Lookup += storeClock.Elapsed;
                    }

                    continue;
                }

                blocks.Add(block);
            }

            reports.Add(new BlockReport(request.LocalBlocks.Count, request.FinalBlock.Length, BlockOutcome.Final));
            await OnModelAsync(() =>
            {
                var clock = Stopwatch.StartNew();
                using (SessionTelemetry.StartSpan(BlockAttentionDiagnostics.AssembleActivity, span))
                {
                    if (ReadsBlocksInPlace(options) && blocks.Count > 0)
                    {
                        cache.AttachPrefix(KvPrefix.Acquire(blocks)); // no copy: the blocks stay where the store keeps them
                    }
                    else
                    {
                        BlockAssembler.Assemble(blocks, _model.Rotary, cache);
                    }
                }

                timings.Assembly = clock.Elapsed;
                return 0;
            }, cancellationToken).ConfigureAwait(false);

            // The final block joins the batch of decoding requests (in chunks when it is long).
            using var finalSpan = SessionTelemetry.StartSpan(BlockAttentionDiagnostics.FinalBlockActivity, span);
            var final = await _scheduler.PrefillAsync(request.FinalBlock, cache, pick, member, cancellationToken).ConfigureAwait(false);
            timings.FinalBlock = final.Compute;
            return new PrefillOutcome(final.Token, computed, reused, encoded, reports);
        }
        finally
        {
            foreach (var block in blocks)
            {
                block.Release();
            }
        }
    }

    private bool ReadsBlocksInPlace(GenerationOptions options) =>
        options.Mode == AttentionMode.Block && _model is IKvPrefixAttention { CanAttendKvPrefix: true };

    /// <summary>A store lookup; a store that fails is logged and counts as a miss, so the request goes on without reuse.</summary>
    private async Task<KvBlock?> TryLookupAsync(IKvBlockStore store, BlockKey key, int[] tokens, int index, Activity? parent, CancellationToken cancellationToken)
    {
        using var lookupSpan = SessionTelemetry.StartSpan(BlockAttentionDiagnostics.LookupActivity, parent);
        try
        {
            var block = await store.TryGetAsync(key, tokens, cancellationToken).ConfigureAwait(false);
            lookupSpan?.SetTag("blockattention.hit", block is not null);
            if (block is not null)
            {
                LogStoreHit(_logger, index, tokens.Length);
            }
            else
            {
                LogStoreMiss(_logger, index, tokens.Length);
            }

            return block;
        }
        catch (Exception e) when (e is not OperationCanceledException and not ObjectDisposedException)
        {
            LogStoreLookupFailed(_logger, e, index);
            return null;
        }
    }

    /// <summary>Offers a block to the store; a store that fails is logged and the request goes on.</summary>
    private async Task<bool> TryStoreAsync(IKvBlockStore store, KvBlock block, int index)
    {
        try
        {
            // Not cancelled with the request: the block is encoded already, keeping it is cheap.
            bool kept = await store.SetAsync(block, CancellationToken.None).ConfigureAwait(false);
            if (kept)
            {
                LogStored(_logger, index, block.Length, block.SizeInBytes);
            }
            else
            {
                LogStoreDeclined(_logger, index, block.Length, block.SizeInBytes);
            }

            return kept;
        }
        catch (Exception e) when (e is not OperationCanceledException and not ObjectDisposedException)
        {
            LogStoreSetFailed(_logger, e, index);
            return false;
        }
    }

    /// <summary>Logs a request that fails for a reason other than its input or its cancellation, and rethrows.</summary>
    private async Task<T> Logged<T>(Task<T> work)
    {
        try
        {
            return await work.ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException and not ArgumentException and not ObjectDisposedException)
        {
            LogRequestFailed(_logger, e);
            throw;
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> (synchronous tensor code) while holding the model gate. Keeping
    /// the work synchronous also keeps TorchSharp's thread-local dispose scopes on one thread.
    /// </summary>
    private async Task<T> OnModelAsync<T>(Func<T> work, CancellationToken cancellationToken)
    {
        await _modelGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return work();
        }
        finally
        {
            _modelGate.Release();
        }
    }

    private void ValidateStopTokens(GenerationOptions options)
    {
        if (options.StopTokenIds is { } ids && ids.FirstOrDefault(id => id >= _model.Info.VocabSize, -1) is int outside and >= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(GenerationOptions.StopTokenIds), outside,
                $"StopTokenIds holds {outside}, outside the model's vocabulary (0..{_model.Info.VocabSize - 1})");
        }
    }


    [LoggerMessage(EventId = 100, Level = LogLevel.Debug, Message = "Block {Index} ({Tokens} tokens) found in the store")]
    private static partial void LogStoreHit(ILogger logger, int index, int tokens);

    [LoggerMessage(EventId = 101, Level = LogLevel.Debug, Message = "Block {Index} ({Tokens} tokens) not in the store: encoding it")]
    private static partial void LogStoreMiss(ILogger logger, int index, int tokens);

    [LoggerMessage(EventId = 102, Level = LogLevel.Debug, Message = "Block {Index} ({Tokens} tokens, {Bytes} bytes) stored for later requests")]
    private static partial void LogStored(ILogger logger, int index, int tokens, long bytes);

    [LoggerMessage(EventId = 103, Level = LogLevel.Debug, Message = "The store declined block {Index} ({Tokens} tokens, {Bytes} bytes), for example because it is larger than the store")]
    private static partial void LogStoreDeclined(ILogger logger, int index, int tokens, long bytes);

    [LoggerMessage(EventId = 110, Level = LogLevel.Warning, Message = "Store lookup of block {Index} failed; encoding it instead")]
    private static partial void LogStoreLookupFailed(ILogger logger, Exception exception, int index);

    [LoggerMessage(EventId = 111, Level = LogLevel.Warning, Message = "Storing block {Index} failed; the request goes on without keeping it")]
    private static partial void LogStoreSetFailed(ILogger logger, Exception exception, int index);

    [LoggerMessage(EventId = 120, Level = LogLevel.Error, Message = "A request failed in the model")]
    private static partial void LogRequestFailed(ILogger logger, Exception exception);

    private readonly record struct PrefillOutcome(int FirstToken, int ComputedTokens, int ReusedBlocks, int EncodedBlocks, IReadOnlyList<BlockReport> Blocks);

    /// <summary>Accumulates a request's timings; written by one request's steps, which never run at the same time.</summary>
    private sealed class TimingsBuilder
    {
        public TimeSpan Tokenize { get; set; }

        public TimeSpan Lookup { get; set; }

        public TimeSpan Encode { get; set; }

        public TimeSpan Assembly { get; set; }

        public TimeSpan FinalBlock { get; set; }

        public TimeSpan Decode { get; set; }

        public GenerationTimings Build() => new(Tokenize, Lookup, Encode, Assembly, FinalBlock, Decode);
    }
}
