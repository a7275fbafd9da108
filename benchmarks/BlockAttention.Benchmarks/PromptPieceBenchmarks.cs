using BenchmarkDotNet.Attributes;
using BlockAttention.Attention;
using BlockAttention.Caching;
using BlockAttention.Cli.Bench;
using BlockAttention.Generation;
using BlockAttention.Llama;

namespace BlockAttention.Benchmarks;

/// <summary>
/// The three pieces of a block-attention request on the CPU (SmolLM2-135M shape, random float32
/// weights, a 2K-token prompt of the paper's shape): re-encoding + assembly of the cached blocks,
/// the 50-token final block's forward pass over them, and one decode step after it.
/// </summary>
/// <remarks>
/// These are the parts `blockattn bench` sums up as block TTFT; here each is timed on its own with
/// BenchmarkDotNet's statistics. Torch uses all cores, so run nothing else meanwhile.
/// </remarks>
public class PromptPieceBenchmarks
{
    private LlamaModel _model = null!;
    private MemoryKvBlockStore _store = null!;
    private List<KvBlock> _blocks = null!;
    private KvCache _assembled = null!;
    private KvCache _reused = null!;
    private KvCache _decoding = null!;
    private int[] _question = null!;
    private int _cachedTokens;

    /// <summary>Total prompt tokens (instruction + passages + the 50-token final block).</summary>
    [Params(2048)]
    public int Tokens { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _model = LlamaModel.CreateRandom(LlamaPresets.SmolLM2_135M);
        var prompt = BenchPrompt.Create(Tokens, _model.Info.VocabSize, seed: 0);
        _cachedTokens = prompt.CachedTokens;
        _question = prompt.Question(0);

        // Encode the passages the way a first request does, through the session and the store.
        _store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 1L << 40 });
        new BlockSession(_model, _store).GenerateAsync(prompt.ForRequest(0), new GenerationOptions { MaxNewTokens = 1 }).GetAwaiter().GetResult();
        _blocks = [.. prompt.LocalBlocks.Select(tokens =>
            _store.TryGetAsync(BlockKey.For(_model.Info.Fingerprint, tokens), tokens).AsTask().GetAwaiter().GetResult()
            ?? throw new InvalidOperationException("a passage is missing from the store"))];

        _reused = _model.CreateCache(Tokens);
        BlockAssembler.Assemble(_blocks, _model.Rotary, _reused);
        _assembled = _model.CreateCache(Tokens);
        BlockAssembler.Assemble(_blocks, _model.Rotary, _assembled);
        _decoding = _model.CreateCache(Tokens + 1);
        BlockAssembler.Assemble(_blocks, _model.Rotary, _decoding);
        using var logits = _model.Forward(_question, _decoding, logitsToKeep: 1);
    }

    /// <summary>What block mode does instead of a prefill: every cached block rotated to its offset and copied into a fresh cache.</summary>
    [Benchmark]
    public void ReencodeAndAssemble()
    {
        using var cache = _model.CreateCache(Tokens);
        BlockAssembler.Assemble(_blocks, _model.Rotary, cache);
    }

    /// <summary>
    /// The same into a cache allocated once: the difference to <see cref="ReencodeAndAssemble"/> is
    /// the first touch of a new cache's memory, which glibc hands out fresh (mmap) above 32 MiB.
    /// </summary>
    [Benchmark]
    public void ReencodeAndAssembleReusedCache()
    {
        _reused.Truncate(0);
        BlockAssembler.Assemble(_blocks, _model.Rotary, _reused);
    }

    /// <summary>The only prompt tokens block mode computes: the final block, attending to everything cached.</summary>
    [Benchmark]
    public void FinalBlockForward()
    {
        _assembled.Truncate(_cachedTokens);
        using var logits = _model.Forward(_question, _assembled, logitsToKeep: 1);
    }

    /// <summary>One generated token after the prompt.</summary>
    [Benchmark]
    public void DecodeStep()
    {
        _decoding.Truncate(Tokens);
        using var logits = _model.Forward([_question[0]], _decoding, logitsToKeep: 1);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _decoding.Dispose();
        _assembled.Dispose();
        _reused.Dispose();
        foreach (var block in _blocks)
        {
            block.Release();
        }

        _store.Dispose();
        _model.Dispose();
    }
}
