using System.Text.Json;
using System.Text.Json.Serialization;

namespace BlockAttention.Tests.Fixtures;

/// <summary>One case of a fixture model's <c>golden.json</c>: a prompt as blocks and the reference outputs.</summary>
public sealed record GoldenCase
{
    [JsonPropertyName("name")] public required string Name { get; init; }

    [JsonPropertyName("blocks")] public required int[][] Blocks { get; init; }

    [JsonPropertyName("logits_kept_positions")] public required int[] LogitsKeptPositions { get; init; }

    [JsonPropertyName("full_greedy")] public required int[] FullGreedy { get; init; }

    [JsonPropertyName("full_margins")] public required double[] FullMargins { get; init; }

    [JsonPropertyName("block_greedy")] public required int[] BlockGreedy { get; init; }

    [JsonPropertyName("block_margins")] public required double[] BlockMargins { get; init; }

    [JsonPropertyName("block1_offset")] public int? Block1Offset { get; init; }

    public string Model { get; init; } = "";

    public int TotalLength => Blocks.Sum(b => b.Length);

    public int[] AllTokens => [.. Blocks.SelectMany(b => b)];

    /// <summary>The README's logit tolerance: 1e-3, or 1e-2 for the 9000-token case.</summary>
    public double LogitTolerance => Name == "long" ? 1e-2 : 1e-3;

    public override string ToString() => $"{Model}/{Name}";

    public static IReadOnlyList<GoldenCase> Load(string model)
    {
        using var stream = File.OpenRead(Path.Combine(FixturePaths.Model(model), "golden.json"));
        var file = JsonSerializer.Deserialize<GoldenFile>(stream) ?? throw new InvalidDataException($"{model}/golden.json is empty");
        return [.. file.Cases.Select(c => c with { Model = model })];
    }

    public static IEnumerable<object[]> All() =>
        new[] { "tiny-llama3", "tiny-llama2" }.SelectMany(Load).Select(c => new object[] { c.Model, c.Name });

    public static GoldenCase Get(string model, string name) => Load(model).Single(c => c.Name == name);

    private sealed record GoldenFile([property: JsonPropertyName("cases")] GoldenCase[] Cases);
}
