using System.Text.Json.Serialization;

namespace BlockAttention.AspNetCore.Reference;

/// <summary>The body of <c>POST /generate</c>, as the Block-Attention reference server takes it.</summary>
internal sealed class GenerateRequest
{
    /// <summary>The prompt's blocks; the last is the final block (it ends with <c>&lt;|assistant|&gt;\n</c> in the reference's RAG layout).</summary>
    [JsonPropertyName("blocks")]
    public required List<string> Blocks { get; init; }

    /// <summary>How many leading blocks are local; the blocks after them join the final block. 0: full attention. Absent: no limit.</summary>
    [JsonPropertyName("num_local_attention_blocks")]
    public int? NumLocalAttentionBlocks { get; init; }
}

/// <summary>The reference server's answer, and its error envelope (<c>ret</c> ≠ 0).</summary>
internal sealed record GenerateResponse(
    [property: JsonPropertyName("ret")] int Ret,
    [property: JsonPropertyName("generated")] string Generated,
    [property: JsonPropertyName("message")] string Message);
