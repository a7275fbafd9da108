using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using BlockAttention.Attention;
using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Models;
using BlockAttention.Prompts;
using BlockAttention.Text;
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
/// request gets the same result as it would alone. Tokenization, store lookups and bookkeeping run
/// in parallel; every use of the model (encoding a block, assembly and the final block, each decode
/// step) is serialised by a gate, so requests interleave step by step and the device is never
/// oversubscribed. Two requests missing the same block at the same time may both encode it; the
/// store keeps one.
/// </para>
/// </remarks>
public sealed class BlockSession : IDisposable
{
    private readonly ICausalLanguageModel _model;
    private readonly IKvBlockStore? _store;
    private readonly SemaphoreSlim _modelGate = new(1, 1);
    private readonly KvCachePool _caches;
    private volatile bool _disposed;

    /// <summary>A session over <paramref name="model"/>, reusing blocks through <paramref name="store"/> (none: every block is encoded every time).</summary>
    /// <param name="model">The model; the session does not own it.</param>
    /// <param name="store">Where encoded blocks are kept for later requests; the session does not own it.</param>
    /// <param name="idleCaches">Request KV caches kept for reuse between requests (their memory stays allocated while idle).</param>
    public BlockSession(ICausalLanguageModel model, IKvBlockStore? store = null, int idleCaches = 2)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        ArgumentOutOfRangeException.ThrowIfNegative(idleCaches);
        _store = store;
        _caches = new KvCachePool(model, idleCaches);
    }

    /// <summary>The model this session runs.</summary>
    public ICausalLanguageModel Model => _model;

    /// <summary>
    /// The most mask elements one chunk of a <see cref="AttentionMode.BlockOnePass"/> prefill may
    /// build: the prompt runs in chunks of query rows, each with its rows of the block mask, so the
    /// mask never grows with the square of the prompt. Results do not depend on it (attention is
    /// causal: a row never looks at a later position). Settable for tests.
    /// </summary>
    internal long OnePassMaskElements { get; set; } = 1L << 24;

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
        var request = TokenizedPrompt.Create(prompt, _model.Tokenizer, _model.Info.MaxPositions, options.PromptCharacterLimit(_model.Info.MaxPositions));
        // In 64 bits: MaxNewTokens may be anything up to int.MaxValue. The last generated token is
        // never fed back, hence - 1; the prompt itself fits (TokenizedPrompt checked it).
        int capacity = (int)Math.Min((long)request.TotalLength + options.MaxNewTokens - 1, _model.Info.MaxPositions);
        var stopTokens = new HashSet<int>(options.StopTokenIds ?? _model.Info.EndOfSequenceTokenIds);
        var sampler = new TokenSampler(options);

        var cache = _caches.Rent(Math.Max(capacity, request.TotalLength));
        try
        {
            var prefill = await PrefillAsync(request, options, cache, sampler.Next, cancellationToken).ConfigureAwait(false);
            var timeToFirstToken = clock.Elapsed;

            // Without a tokenizer (a token-ids-only checkpoint) the result has token ids and no text.
            var decoder = _model.Tokenizer is { } tokenizer ? new StreamingTextDecoder(tokenizer) : null;
            var stops = new StopStringMatcher(options.StopStrings);
            var tokens = new List<int>();
            var text = new StringBuilder();
            int emitted = 0;
            FinishReason? finish = null;
            int next = prefill.FirstToken;
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

                // The cache holds the prompt and every generated token but the last; at capacity
                // either MaxNewTokens is reached or the model has no position left.
                if (tokens.Count >= options.MaxNewTokens || cache.Length >= capacity)
                {
                    finish = FinishReason.Length;
                    break;
                }

                next = await DecodeStepAsync(next, cache, sampler, cancellationToken).ConfigureAwait(false);
            }

            if (finish != FinishReason.StopString && stops.AppendAndCut(text, decoder?.Flush()))
            {
                finish = FinishReason.StopString;
            }

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
            };
            yield return new GenerationChunk(emitted < final.Length ? final[emitted..] : "", null, result);
        }
        finally
        {
            _caches.Return(cache);
        }
    }

    /// <summary>
    /// Frees the request caches kept for reuse. Requests still running end with
    /// <see cref="ObjectDisposedException"/> at their next step on the model (their caches and
    /// blocks are freed as they leave). The model and the store are the caller's.
    /// </summary>
    public void Dispose()
    {
        _disposed = true;
        _caches.Dispose();
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
        }, cancellationToken).ConfigureAwait(false);
        return logits!;
    }

    private async Task<PrefillOutcome> PrefillAsync(TokenizedPrompt request, GenerationOptions options, KvCache cache, Func<Tensor, int> pick, CancellationToken cancellationToken)
    {
        if (options.Mode == AttentionMode.Block)
        {
            return await PrefillBlocksAsync(request, options, cache, pick, cancellationToken).ConfigureAwait(false);
        }

        return await OnModelAsync(() =>
        {
            int[] all = request.AllTokens();
            using var logits = options.Mode == AttentionMode.BlockOnePass
                ? ForwardOnePass(all, request.BlockLengths(), cache)
                : _model.Forward(all, cache, 1)!;
            using var last = logits[0];
            return new PrefillOutcome(pick(last), all.Length, ReusedBlocks: 0, EncodedBlocks: 0); // no block is encoded on its own
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

    private async Task<PrefillOutcome> PrefillBlocksAsync(TokenizedPrompt request, GenerationOptions options, KvCache cache, Func<Tensor, int> pick, CancellationToken cancellationToken)
    {
        var blocks = new List<KvBlock>(request.LocalBlocks.Count);
        int reused = 0, encoded = 0, computed = request.FinalBlock.Length;
        try
        {
            foreach (int[] tokens in request.LocalBlocks)
            {
                if (tokens.Length == 0)
                {
                    continue; // nothing to encode, nothing to attend to
                }

                var key = BlockKey.For(_model.Info.Fingerprint, tokens);
                var block = _store is null ? null : await _store.TryGetAsync(key, tokens, cancellationToken).ConfigureAwait(false);
                if (block is not null)
                {
                    reused++;
                }
                else
                {
                    block = await OnModelAsync(() => KvBlock.Encode(_model, tokens), cancellationToken).ConfigureAwait(false);
                    blocks.Add(block); // from here on the finally releases it, whatever the store does
                    encoded++;
                    computed += tokens.Length;
                    if (_store is not null && options.StoreEncodedBlocks)
                    {
                        await _store.SetAsync(block, CancellationToken.None).ConfigureAwait(false);
                    }

                    continue;
                }

                blocks.Add(block);
            }

            return await OnModelAsync(() =>
            {
                BlockAssembler.Assemble(blocks, _model.Rotary, cache);
                using var logits = _model.Forward(request.FinalBlock, cache, 1)!;
                using var last = logits[0];
                return new PrefillOutcome(pick(last), computed, reused, encoded);
            }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            foreach (var block in blocks)
            {
                block.Release();
            }
        }
    }

    private Task<int> DecodeStepAsync(int token, KvCache cache, TokenSampler sampler, CancellationToken cancellationToken) =>
        OnModelAsync(() =>
        {
            using var logits = _model.Forward([token], cache, 1)!;
            using var last = logits[0];
            return sampler.Next(last);
        }, cancellationToken);

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

    private readonly record struct PrefillOutcome(int FirstToken, int ComputedTokens, int ReusedBlocks, int EncodedBlocks);
}
