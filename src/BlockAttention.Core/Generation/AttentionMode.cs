namespace BlockAttention.Generation;

/// <summary>How a prompt's blocks attend to each other.</summary>
public enum AttentionMode
{
    /// <summary>
    /// Block-Attention with reuse: local blocks are taken from the store or encoded alone from
    /// position 0, re-rotated to their offsets and assembled; only the final block is computed.
    /// </summary>
    Block,

    /// <summary>Ordinary causal attention over the whole prompt (the same token ids), no reuse.</summary>
    Full,

    /// <summary>
    /// Block-Attention computed in one forward pass with a block-diagonal mask and continuous
    /// positions (the training formulation). Same result as <see cref="Block"/> within float
    /// rounding, no store involved; useful without a store and as a test oracle.
    /// </summary>
    BlockOnePass,
}
