using System.Text.Json;

namespace BlockAttention.Reports;

/// <summary>One row of <c>hf_baseline_ttft.py</c>'s JSON: transformers' TTFT at one length on the same card.</summary>
internal sealed record HfBaselineRow(int Tokens, double FullMs, double BlockMs);

/// <summary>Reads the JSON that <c>hf_baseline_ttft.py</c> writes (<c>anchor_ttft.json</c>).</summary>
internal static class HfBaseline
{
    public static IReadOnlyList<HfBaselineRow> Read(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        return [.. document.RootElement.GetProperty("rows").EnumerateArray().Select(row => new HfBaselineRow(
            row.GetProperty("L").GetInt32(), row.GetProperty("full_ms").GetDouble(), row.GetProperty("block_ms").GetDouble()))];
    }
}
