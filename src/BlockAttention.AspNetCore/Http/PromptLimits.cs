using BlockAttention.Models;
using Microsoft.Extensions.Options;

namespace BlockAttention.AspNetCore.Http;

/// <summary>
/// Checks a request's blocks against the server's limits and the model's context before any
/// generation starts, so that an oversized request is a clear 4xx rather than a long wait.
/// </summary>
internal sealed class PromptLimits(ICausalLanguageModel model, IOptions<BlockAttentionServerOptions> limits)
{
    private readonly BlockAttentionServerOptions options = limits.Value;

    /// <summary>
    /// Checks the number of blocks, each block's token count and the total against the model's
    /// context, leaving room for <paramref name="maxNewTokens"/>. Returns the prompt's tokens.
    /// </summary>
    public int Check(IReadOnlyList<string> blocks, int maxNewTokens, string param)
    {
        var tokenizer = model.Tokenizer
            ?? throw new ApiException(StatusCodes.Status400BadRequest, "the model has no tokenizer.json, so it cannot take text prompts");
        if (blocks.Count > options.MaxBlocks)
        {
            throw new ApiException(StatusCodes.Status400BadRequest,
                $"the request has {blocks.Count} blocks, more than the limit of {options.MaxBlocks} ({options.Key(nameof(options.MaxBlocks))})", param, "too_many_blocks");
        }

        long total = 0;
        for (int i = 0; i < blocks.Count; i++)
        {
            if (blocks[i] is null)
            {
                throw new ApiException(StatusCodes.Status400BadRequest, $"{param}[{i}] is null", $"{param}[{i}]");
            }

            int tokens = tokenizer.Encode(blocks[i]).Count;
            if (tokens > options.MaxBlockTokens)
            {
                throw new ApiException(StatusCodes.Status400BadRequest,
                    $"{param}[{i}] has {tokens} tokens, more than the limit of {options.MaxBlockTokens} per block ({options.Key(nameof(options.MaxBlockTokens))})",
                    $"{param}[{i}]", "block_too_large");
            }

            total += tokens;
        }

        int context = model.Info.MaxPositions;
        if (total + maxNewTokens > context)
        {
            throw new ApiException(StatusCodes.Status400BadRequest,
                $"the prompt has {total} tokens and asks for up to {maxNewTokens} new ones, more than the model's context of {context} tokens",
                param, "context_length_exceeded");
        }

        return (int)total;
    }
}
