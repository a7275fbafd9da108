namespace BlockAttention.Generation;

/// <summary>What happened to one block of a prompt in a request.</summary>
public enum BlockOutcome
{
    /// <summary>A local block whose states came from the store.</summary>
    Reused,

    /// <summary>A local block encoded by the model for this request (alone, from position 0).</summary>
    Encoded,

    /// <summary>Part of one forward pass over the whole prompt (Full and BlockOnePass modes).</summary>
    Computed,

    /// <summary>The final block, computed on top of the others.</summary>
    Final,

    /// <summary>A local block with no tokens: nothing to encode or attend to.</summary>
    Empty,
}

/// <summary>One block of a request: its position in the prompt, its length and what happened to it.</summary>
/// <param name="Index">The block's index in <see cref="Prompts.BlockPrompt.Blocks"/>.</param>
/// <param name="TokenCount">Its tokens.</param>
/// <param name="Outcome">Reused, encoded, computed in one pass, or final.</param>
public sealed record BlockReport(int Index, int TokenCount, BlockOutcome Outcome);

/// <summary>
/// Where a request's time went. Model work is timed while the request holds the model, so time
/// spent waiting for other requests is in none of these (but is in the result's TTFT and total).
/// </summary>
/// <param name="Tokenize">Tokenizing the blocks.</param>
/// <param name="Lookup">Store lookups and offering newly encoded blocks to the store.</param>
/// <param name="Encode">Encoding local blocks the store did not have.</param>
/// <param name="Assembly">Placing the local blocks' states at their offsets in the request's cache.</param>
/// <param name="FinalBlock">The forward pass of the final block (Full and BlockOnePass: of the whole prompt), first token included.</param>
/// <param name="Decode">Generating the tokens after the first.</param>
public readonly record struct GenerationTimings(TimeSpan Tokenize, TimeSpan Lookup, TimeSpan Encode, TimeSpan Assembly, TimeSpan FinalBlock, TimeSpan Decode);
