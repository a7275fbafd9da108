using BlockAttention.Generation;
using BlockAttention.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace BlockAttention.AspNetCore.Reference;

/// <summary>
/// <c>POST /generate</c>, the reference server's API: greedy, at most <see cref="BlockAttentionServerOptions.MaxNewTokens"/>
/// new tokens (2048), the reference's stop strings and end-of-text token, and the generated text
/// decoded with its special tokens (a trailing <c>&lt;|end_of_text|&gt;</c> stays). Unlike the
/// reference, repeated passages come from the block store, and errors are a 4xx envelope.
/// </summary>
internal static class GenerateEndpoint
{
    /// <summary>The reference generates until this token (Llama 3's end of text) or a stop string.</summary>
    private const string EndOfText = "<|end_of_text|>";

    public static async Task<IResult> HandleAsync(HttpContext context, BlockSession session, IOptions<BlockAttentionServerOptions> settings, PromptLimits promptLimits)
    {
        var limits = settings.Value;
        var cancellationToken = context.RequestAborted;
        var request = await JsonBody.ReadAsync<GenerateRequest>(context.Request, limits, cancellationToken);
        if (request.Blocks.Count == 0)
        {
            throw new ApiException(StatusCodes.Status400BadRequest, "'blocks' is empty: send at least the final block", "blocks");
        }

        if (request.NumLocalAttentionBlocks is < 0)
        {
            throw new ApiException(StatusCodes.Status400BadRequest,
                $"'num_local_attention_blocks' must be 0 or more, got {request.NumLocalAttentionBlocks}", "num_local_attention_blocks");
        }

        int promptTokens = promptLimits.Check(request.Blocks, maxNewTokens: 1, "blocks");
        var (prompt, mode) = ReferencePrompt.Create(request.Blocks, request.NumLocalAttentionBlocks);

        var tokenizer = session.Model.Tokenizer!;
        var endOfText = tokenizer.Encode(EndOfText);
        var options = new GenerationOptions
        {
            Mode = mode,
            MaxNewTokens = limits.MaxNewTokens,
            StopStrings = GenerationOptions.ReferenceStopStrings,
            StopTokenIds = endOfText.Count == 1 ? [endOfText[0]] : null,
        };
        var result = await session.GenerateAsync(prompt, options, cancellationToken);

        // The reference decodes every generated token, the end-of-text token and a stop string's included.
        var tokens = result.FinishReason == FinishReason.EndOfSequence && endOfText.Count == 1
            ? [.. result.TokenIds, endOfText[0]]
            : result.TokenIds;
        var headers = context.Response.Headers;
        headers["X-BlockAttention-Ttft-Ms"] = result.TimeToFirstToken.TotalMilliseconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
        headers["X-BlockAttention-Blocks"] = $"reused={result.ReusedBlocks}; encoded={result.EncodedBlocks}; local={result.LocalBlocks}";
        headers["X-BlockAttention-Prompt-Tokens"] = $"{promptTokens}";
        return Results.Json(new GenerateResponse(0, tokenizer.Decode(tokens), ""), ServerJson.Options);
    }
}
