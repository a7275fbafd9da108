using System.Text.Encodings.Web;
using System.Text.Json;
using BlockAttention.Evaluation;
using BlockAttention.Generation;

namespace BlockAttention.Cli.Eval;

/// <summary>One record answered in one mode, scored with the reference metric.</summary>
internal sealed record EvalOutcome(int Index, RagRecord Record, GenerationResult Result, string Prediction, bool Correct)
{
    public static async Task<EvalOutcome> RunAsync(BlockSession session, RagRecord record, int index, AttentionMode mode, int maxNewTokens,
        CancellationToken cancellationToken)
    {
        var options = new GenerationOptions
        {
            Mode = mode,
            MaxNewTokens = maxNewTokens,
            StopStrings = GenerationOptions.ReferenceStopStrings,
        };
        GenerationResult result;
        try
        {
            result = await session.GenerateAsync(record.ToPrompt(), options, cancellationToken).ConfigureAwait(false);
        }
        catch (ArgumentException e)
        {
            // The prompt does not fit the model, for example.
            throw new InputException($"record {index + 1} (\"{record.Question}\"): {e.Message}", e);
        }

        return new EvalOutcome(index, record, result, RagAnswerMetric.ExtractPrediction(result.Text), record.IsAnsweredBy(result.Text));
    }

    /// <summary>One line of the predictions file.</summary>
    public string ToJson(string mode)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteNumber("index", Index);
            json.WriteString("mode", mode);
            json.WriteString("question", Record.Question);
            json.WriteStartArray("answers");
            foreach (string answer in Record.Answers)
            {
                json.WriteStringValue(answer);
            }

            json.WriteEndArray();
            json.WriteString("generated", Result.Text);
            json.WriteString("prediction", Prediction);
            json.WriteBoolean("correct", Correct);
            json.WriteNumber("ttft_ms", Math.Round(Result.TimeToFirstToken.TotalMilliseconds, 3));
            json.WriteNumber("total_ms", Math.Round(Result.TotalTime.TotalMilliseconds, 3));
            json.WriteNumber("prompt_tokens", Result.PromptTokens);
            json.WriteNumber("computed_prompt_tokens", Result.ComputedPromptTokens);
            json.WriteNumber("generated_tokens", Result.TokenIds.Count);
            json.WriteNumber("local_blocks", Result.LocalBlocks);
            json.WriteNumber("reused_blocks", Result.ReusedBlocks);
            json.WriteEndObject();
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }
}
