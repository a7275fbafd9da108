using BlockAttention.Attention;
using BlockAttention.Models;
using BlockAttention.Text;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Fixtures;

/// <summary>A model that counts the work asked of it and passes every call to the real model it wraps.</summary>
internal sealed class CountingModel(ICausalLanguageModel inner) : ICausalLanguageModel
{
    private int _forwards;
    private int _caches;

    public int Forwards => Volatile.Read(ref _forwards);

    public int CachesCreated => Volatile.Read(ref _caches);

    public ModelInfo Info => inner.Info;

    public RotaryEmbedding Rotary => inner.Rotary;

    public ITextTokenizer? Tokenizer => inner.Tokenizer;

    public Tensor? Forward(ReadOnlySpan<int> tokens, KvCache cache, int logitsToKeep = 1, Tensor? attentionMask = null)
    {
        Interlocked.Increment(ref _forwards);
        return inner.Forward(tokens, cache, logitsToKeep, attentionMask);
    }

    public KvCache CreateCache(int capacity)
    {
        Interlocked.Increment(ref _caches);
        return inner.CreateCache(capacity);
    }

    public void Dispose() => inner.Dispose();
}
