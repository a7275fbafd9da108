namespace BlockAttention.Llama;

/// <summary>The dimensions the forward pass needs, taken once from the config.</summary>
internal sealed record LlamaShape(int Hidden, int Heads, int KvHeads, int HeadDim, int Intermediate, int Layers, int Vocab, double RmsNormEps)
{
    /// <summary>Query heads served by each key/value head.</summary>
    public int Group => Heads / KvHeads;
}
