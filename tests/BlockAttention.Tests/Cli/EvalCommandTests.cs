using System.Text.Json;
using BlockAttention.Evaluation;
using BlockAttention.Tests.Checkpoints;
using BlockAttention.Tests.Evaluation;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Cli;

/// <summary><c>blockattn eval</c> on the shipped dataset with the tiny fixture model (random weights: accuracy is not the point).</summary>
public class EvalCommandTests
{
    [Fact]
    public void Both_modes_write_a_prediction_per_record_and_report_accuracy_ttft_and_store_hits()
    {
        using var folder = new TempDirectory();
        string outPath = folder.File("predictions.jsonl");

        var run = CliRun.Of("eval", "--model", FixturePaths.Model("tiny-llama3"), "--data", ShippedDatasetTests.DatasetPath,
            "--mode", "both", "--max-new-tokens", "3", "--out", outPath);

        run.ExitCode.Should().Be(0, run.ToString());
        var records = RagDataReader.ReadFile(ShippedDatasetTests.DatasetPath);
        var lines = File.ReadAllLines(outPath).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        lines.Should().HaveCount(2 * records.Count);
        lines.Select(l => l.GetProperty("mode").GetString()).Distinct().Should().Equal("block", "full");

        foreach (var line in lines)
        {
            var record = records[line.GetProperty("index").GetInt32()];
            line.GetProperty("question").GetString().Should().Be(record.Question);
            string generated = line.GetProperty("generated").GetString()!;
            line.GetProperty("prediction").GetString().Should().Be(RagAnswerMetric.ExtractPrediction(generated));
            line.GetProperty("correct").GetBoolean().Should().Be(record.IsAnsweredBy(generated));
            line.GetProperty("generated_tokens").GetInt32().Should().BeInRange(0, 3);
            line.GetProperty("ttft_ms").GetDouble().Should().BePositive();
        }

        // The store hit rate of block mode, computed independently: every local block whose text an
        // earlier record already had is a hit (the store is large enough never to evict here).
        var seen = new HashSet<string>();
        int local = 0, hits = 0;
        foreach (var record in records)
        {
            foreach (var block in record.ToPrompt().LocalBlocks)
            {
                local++;
                hits += seen.Add(block.Text!) ? 0 : 1;
            }
        }

        var blockLines = lines.Where(l => l.GetProperty("mode").GetString() == "block").ToList();
        blockLines.Sum(l => l.GetProperty("reused_blocks").GetInt32()).Should().Be(hits);
        lines.Where(l => l.GetProperty("mode").GetString() == "full").Should().OnlyContain(l => l.GetProperty("reused_blocks").GetInt32() == 0);

        double BlockAccuracy(string mode) => 100.0 * lines.Count(l => l.GetProperty("mode").GetString() == mode && l.GetProperty("correct").GetBoolean()) / records.Count;
        run.Stdout.Should().Contain($"{records.Count} records from {ShippedDatasetTests.DatasetPath}");
        run.Stdout.Should().MatchRegex($@"block +{BlockAccuracy("block"):0.0}% +[\d.]+ ms +[\d.]+ ms +{100.0 * hits / local:0.0}% \({hits}/{local} blocks\)");
        run.Stdout.Should().MatchRegex($@"full +{BlockAccuracy("full"):0.0}% +[\d.]+ ms +[\d.]+ ms +- \(full attention uses no store\)");
        run.Stderr.Should().Contain($"block mode: {records.Count}/{records.Count}").And.Contain($"full mode: {records.Count}/{records.Count}");
    }

    [Fact]
    public void A_bad_record_is_exit_code_2_naming_the_file_and_line()
    {
        using var folder = new TempDirectory();
        string data = folder.File("bad.jsonl");
        File.WriteAllText(data, File.ReadLines(ShippedDatasetTests.DatasetPath).First() + "\n{\"question\": \"Q\", \"answers\": []}\n");

        var run = CliRun.Of("eval", "--model", FixturePaths.Model("tiny-llama3"), "--data", data);

        run.ExitCode.Should().Be(2, run.ToString());
        run.Stderr.Should().Contain($"{data}, line 2: 'answers' is empty");
    }

    [Theory]
    [InlineData(new[] { 5.0 }, 50, 5.0)]
    [InlineData(new[] { 1.0, 2.0, 3.0, 4.0 }, 50, 2.5)]
    [InlineData(new[] { 1.0, 2.0, 3.0, 4.0, 5.0 }, 95, 4.8)]
    [InlineData(new[] { 10.0, 20.0 }, 95, 19.5)]
    public void Percentiles_interpolate_between_ranks(double[] sorted, double percent, double expected) =>
        BlockAttention.Cli.Eval.EvalSummary.Percentile(sorted, percent).Should().BeApproximately(expected, 1e-9);
}
