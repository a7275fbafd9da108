using System.Diagnostics;
using System.Runtime.CompilerServices;
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

    /// <summary>Generates a completion of <paramref name="prompt"/>.</summary>
    /// <exception cref="ArgumentException">The prompt or options are invalid: empty final block, longer than the model's positions, bad option values.</exception>
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
    public async IAsyncEnumerable<GenerationChunk> StreamAsync(BlockPrompt prompt, GenerationOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        options ??= new GenerationOptions();
        options.Validate();
        var clock = Stopwatch.StartNew();
        var request = TokenizedPrompt.Create(prompt, _model.Tokenizer, _model.Info.MaxPositions);
        int capacity = Math.Min(request.TotalLength + options.MaxNewTokens - 1, _model.Info.MaxPositions);
        var stopTokens = new HashSet<int>(options.StopTokenIds ?? _model.Info.EndOfSequenceTokenIds);
        var sampler = new TokenSampler(options);

        var cache = _caches.Rent(Math.Max(capacity, request.TotalLength));
        try
        {
            var prefill = await PrefillAsync(request, options, cache, sampler.Next, cancellationToken).ConfigureAwait(false);
            var timeToFirstToken = clock.Elapsed;

            // Without a tokenizer (a token-ids-only checkpoint) the result has token ids and no text.
            var decoder = _model.Tokenizer is { } tokenizer ? new StreamingTextDecoder(tokenizer) : null;
            var stops = new StopStringMatcher(options.StopStrings ?? prompt.StopStrings);
            var tokens = new List<int>();
            string text = "";
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
                text += decoder?.Append(next);
                int stopAt = stops.FindStop(text);
                if (stopAt >= 0)
                {
                    text = text[..stopAt];
                    finish = FinishReason.StopString;
                    break;
                }

                int safe = stops.SafeLength(text);
                if (safe > emitted)
                {
                    yield return new GenerationChunk(text[emitted..safe], next);
                    emitted = safe;
                }
                else
                {
                    yield return new GenerationChunk("", next);
                }

                if (tokens.Count >= options.MaxNewTokens || cache.Length >= cache.Capacity)
                {
                    finish = FinishReason.Length;
                    break;
                }

                next = await DecodeStepAsync(next, cache, sampler, cancellationToken).ConfigureAwait(false);
            }

            if (finish != FinishReason.StopString)
            {
                text += decoder?.Flush();
                int stopAt = stops.FindStop(text);
                if (stopAt >= 0)
                {
                    text = text[..stopAt];
                    finish = FinishReason.StopString;
                }
            }

            var result = new GenerationResult
            {
                Text = text,
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
            yield return new GenerationChunk(emitted < text.Length ? text[emitted..] : "", null, result);
        }
        finally
        {
            _caches.Return(cache);
        }
    }

    /// <summary>Frees the request caches kept for reuse. The model and the store are the caller's.</summary>
    public void Dispose() => _caches.Dispose();

    /// <summary>
    /// The logits (float32, on the CPU) from which the first token would be chosen: the same
    /// prefill as a request, store and all. For tests that compare modes and runs numerically.
    /// </summary>
    internal async Task<float[]> FirstTokenLogitsAsync(BlockPrompt prompt, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        options.Validate();
        var request = TokenizedPrompt.Create(prompt, _model.Tokenizer, _model.Info.MaxPositions);
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
            using var mask = options.Mode == AttentionMode.BlockOnePass ? BlockMask.Create(request.BlockLengths(), _model.Info.Device) : null;
            using var logits = _model.Forward(all, cache, 1, mask)!;
            using var last = logits[0];
            return new PrefillOutcome(pick(last), all.Length, ReusedBlocks: 0, EncodedBlocks: 0); // no block is encoded on its own
        }, cancellationToken).ConfigureAwait(false);
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
                    encoded++;
                    computed += tokens.Length;
                    if (_store is not null && options.StoreEncodedBlocks)
                    {
                        await _store.SetAsync(block, CancellationToken.None).ConfigureAwait(false);
                    }
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
            return work();
        }
        finally
        {
            _modelGate.Release();
        }
    }

    private readonly record struct PrefillOutcome(int FirstToken, int ComputedTokens, int ReusedBlocks, int EncodedBlocks);
}
