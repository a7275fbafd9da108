using BlockAttention;
using BlockAttention.AI;

namespace Microsoft.Extensions.AI;

/// <summary>Gets an <see cref="IChatClient"/> for a <see cref="BlockSession"/>.</summary>
public static class BlockSessionChatClientExtensions
{
    /// <summary>
    /// An <see cref="IChatClient"/> that answers with <paramref name="session"/> (which stays the
    /// caller's to dispose). See <see cref="BlockAttentionChatClient"/> for how messages map to blocks.
    /// </summary>
    public static IChatClient AsChatClient(this BlockSession session, BlockAttentionChatClientOptions? options = null) =>
        new BlockAttentionChatClient(session, options);
}
