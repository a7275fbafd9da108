using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using BlockAttention.Generation;

namespace BlockAttention.Cli.Generate;

/// <summary>What <c>generate</c> reports for one run: the result's fields plus the run's setting.</summary>
internal sealed record RunReport(int Run, int Runs, string Mode, string Store, string Device, string DType, GenerationResult Result)
{
    public double TimeToFirstTokenMs => Result.TimeToFirstToken.TotalMilliseconds;

    public double TotalMs => Result.TotalTime.TotalMilliseconds;

    public static string FinishReasonName(FinishReason reason) => reason switch
    {
        FinishReason.EndOfSequence => "end_of_sequence",
        FinishReason.StopString => "stop_string",
        _ => "length",
    };

    /// <summary>The line printed after the streamed text.</summary>
    public string Summary() =>
        $"run {Run}/{Runs}: TTFT {TimeToFirstTokenMs:0.0} ms | total {TotalMs:0.0} ms | {Result.TokensPerSecond:0.0} tokens/s | " +
        $"{Result.TokenIds.Count} tokens | blocks reused {Result.ReusedBlocks}/{Result.LocalBlocks}, encoded {Result.EncodedBlocks} | " +
        $"prompt tokens computed {Result.ComputedPromptTokens} of {Result.PromptTokens} | finish {FinishReasonName(Result.FinishReason)} | " +
        $"mode {Mode}, store {Store}, {DType} on {Device}";

    /// <summary>One JSON object on one line, with every field of the result.</summary>
    public string ToJson()
    {
        using var buffer = new MemoryStream();
        // Relaxed escaping keeps generated text readable; control characters and quotes are still escaped.
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteNumber("run", Run);
            json.WriteNumber("runs", Runs);
            json.WriteString("mode", Mode);
            json.WriteString("text", Result.Text);
            json.WriteStartArray("token_ids");
            foreach (int id in Result.TokenIds)
            {
                json.WriteNumberValue(id);
            }

            json.WriteEndArray();
            json.WriteNumber("generated_tokens", Result.TokenIds.Count);
            json.WriteString("finish_reason", FinishReasonName(Result.FinishReason));
            json.WriteNumber("ttft_ms", Math.Round(TimeToFirstTokenMs, 3));
            json.WriteNumber("total_ms", Math.Round(TotalMs, 3));
            json.WriteNumber("tokens_per_second", Math.Round(Result.TokensPerSecond, 3));
            json.WriteNumber("prompt_tokens", Result.PromptTokens);
            json.WriteNumber("computed_prompt_tokens", Result.ComputedPromptTokens);
            json.WriteNumber("local_blocks", Result.LocalBlocks);
            json.WriteNumber("reused_blocks", Result.ReusedBlocks);
            json.WriteNumber("encoded_blocks", Result.EncodedBlocks);
            json.WriteString("store", Store);
            json.WriteString("device", Device);
            json.WriteString("dtype", DType);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }
}
