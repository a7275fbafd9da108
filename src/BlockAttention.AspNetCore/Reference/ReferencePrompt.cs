using BlockAttention.Generation;
using BlockAttention.Prompts;

namespace BlockAttention.AspNetCore.Reference;

/// <summary>
/// How the reference server turns <c>blocks</c> and <c>num_local_attention_blocks</c> into a
/// prompt: the first N blocks stay local, the text of the blocks after them is joined in front of
/// the final block; with N = 0 (or a single block) the whole text is one sequence in full attention.
/// </summary>
internal static class ReferencePrompt
{
    public static (BlockPrompt Prompt, AttentionMode Mode) Create(IReadOnlyList<string> blocks, int? numLocalAttentionBlocks)
    {
        int limit = numLocalAttentionBlocks ?? int.MaxValue;
        var local = blocks.Take(blocks.Count - 1).ToList();
        string final = blocks[^1];
        if (local.Count > limit)
        {
            final = string.Concat(local.Skip(limit)) + final;
            local = local.Take(limit).ToList();
        }

        // Joined as text, not as blocks: tokenizing the joined text can differ at block borders.
        return local.Count == 0
            ? (BlockPrompt.FromBlocks(final), AttentionMode.Full)
            : (BlockPrompt.FromBlocks([.. local, final]), AttentionMode.Block);
    }
}
