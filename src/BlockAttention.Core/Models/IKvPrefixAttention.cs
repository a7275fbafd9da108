using BlockAttention.Attention;

namespace BlockAttention.Models;

/// <summary>
/// Implemented by models that can attend to cached blocks where they lie (a
/// <see cref="KvCache"/> with a <see cref="KvPrefix"/>), rotating queries instead of keys, so a
/// request costs no copy or re-rotation of its cached blocks.
/// </summary>
public interface IKvPrefixAttention
{
    /// <summary>True when <see cref="ICausalLanguageModel.Forward"/> accepts a cache with a prefix on this model's device.</summary>
    bool CanAttendKvPrefix { get; }
}
