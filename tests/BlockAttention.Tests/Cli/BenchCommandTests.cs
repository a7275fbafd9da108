using BlockAttention.Cli.Bench;
using BlockAttention.Tests.Checkpoints;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Cli;

/// <summary>
/// <c>blockattn bench</c>'s checks: the <c>--expect-*</c> options judged at the longest length, and
/// bad values refused before anything is measured. (Timings themselves are for the benchmark, not tests.)
/// </summary>
public class BenchCommandTests
{
    // Hand-made figures: at 4096 tokens full 1000 ms, block 40 ms (25x), re-encoding into a reused
    // cache 8 ms (20% of block); at 512 tokens full 100 ms, block 50 ms (2x), re-encoding 25 ms (50%).
    private static readonly LengthResult[] s_rows = [Row(512, full: 100, block: 50, reencode: 25), Row(4096, full: 1000, block: 40, reencode: 8)];

    [Theory]
    [InlineData(20.0, true)]
    [InlineData(25.0, true)]
    [InlineData(30.0, false)]
    public void Expect_speedup_compares_full_over_block_at_the_longest_length(double expected, bool passes)
    {
        var check = BenchExpectations.Evaluate(Options() with { ExpectSpeedup = expected }, s_rows, soak: null).Single();

        check.Name.Should().Contain("4096 tokens");
        check.Passed.Should().Be(passes, check.Detail);
        check.Detail.Should().Contain("25.0x");
    }

    [Theory]
    [InlineData(0.25, true)]
    [InlineData(0.2, true)]
    [InlineData(0.1, false)]
    public void Expect_reencode_share_compares_reencoding_in_a_reused_cache_with_block_ttft(double expected, bool passes)
    {
        var check = BenchExpectations.Evaluate(Options() with { ExpectReencodeShare = expected }, s_rows, soak: null).Single();

        check.Passed.Should().Be(passes, check.Detail);
        check.Detail.Should().Contain("8.0 ms").And.Contain("40.0 ms");
    }

    [Theory]
    [InlineData(45.0, true)]
    [InlineData(30.0, false)]
    public void Expect_block_ttft_is_a_limit_in_milliseconds(double expected, bool passes)
    {
        var check = BenchExpectations.Evaluate(Options() with { ExpectBlockTtftMs = expected }, s_rows, soak: null).Single();

        check.Passed.Should().Be(passes, check.Detail);
    }

    [Theory]
    [InlineData(3.0, true)]
    [InlineData(3.5, false)]
    public void Expect_batch_speedup_compares_throughput_at_the_highest_concurrency(double expected, bool passes)
    {
        ConcurrencyResult[] levels = [Level(1, batched: 40, serial: 40), Level(8, batched: 120, serial: 40)];

        var check = BenchExpectations.Evaluate(Options() with { ExpectBatchSpeedup = expected }, [], soak: null, levels).Single();

        check.Name.Should().Contain("concurrency 8");
        check.Passed.Should().Be(passes, check.Detail);
        check.Detail.Should().Contain("3.00x");
    }

    [Fact]
    public void The_concurrency_levels_are_written_with_their_figures_side_by_side()
    {
        var report = new { Concurrency = new[] { Level(4, batched: 90, serial: 30) } };

        using var json = System.Text.Json.JsonDocument.Parse(System.Text.Json.JsonSerializer.Serialize(report, BenchReport.JsonOptions));
        var level = json.RootElement.GetProperty("concurrency")[0];

        level.GetProperty("concurrency").GetInt32().Should().Be(4);
        level.GetProperty("output_tokens_per_second").GetDouble().Should().Be(90);
        level.GetProperty("throughput_ratio").GetDouble().Should().Be(3);
        foreach (string key in new[] { "ttft_p50_ms", "ttft_p95_ms", "tpot_p50_ms", "tpot_p95_ms" })
        {
            level.GetProperty(key).GetDouble().Should().BePositive(key);
            level.GetProperty("serial").GetProperty(key).GetDouble().Should().BePositive(key);
        }

        level.GetProperty("serial").GetProperty("output_tokens_per_second").GetDouble().Should().Be(30);
    }

    [Fact]
    public void Poisson_arrivals_are_seeded_and_average_the_rate()
    {
        var arrivals = ConcurrencyRunner.Arrivals(20_000, rate: 4, seed: 7);

        arrivals.Should().Equal(ConcurrencyRunner.Arrivals(20_000, rate: 4, seed: 7));
        arrivals.Should().BeInAscendingOrder();
        arrivals[0].Should().Be(0);
        (arrivals[^1] / (arrivals.Length - 1)).Should().BeApproximately(0.25, 0.01, "exponential gaps of mean 1/rate");
        ConcurrencyRunner.Arrivals(10, 4, seed: 8).Should().NotEqual(ConcurrencyRunner.Arrivals(10, 4, seed: 7));
    }

    [Fact]
    public void Percentiles_interpolate_between_ranks()
    {
        double[] values = [40, 10, 30, 20, 50];

        ConcurrencyRunner.Percentile(values, 50).Should().Be(30);
        ConcurrencyRunner.Percentile(values, 95).Should().BeApproximately(48, 1e-9);
        ConcurrencyRunner.Percentile(values, 0).Should().Be(10);
        double.IsNaN(ConcurrencyRunner.Percentile([], 50)).Should().BeTrue();
    }

    [Fact]
    public void Without_expectations_nothing_is_checked()
    {
        BenchExpectations.Evaluate(Options(), s_rows, soak: null).Should().BeEmpty();
    }

    [Fact]
    public void A_baseline_checks_full_ttft_at_each_length_it_lists()
    {
        using var folder = new TempDirectory();
        File.WriteAllText(folder.File("anchor.json"), """{"rows": [{"L": 512, "full_ms": 120.0}, {"L": 4096, "full_ms": 900.0}, {"L": 8192, "full_ms": 1.0}]}""");

        var checks = BenchExpectations.Evaluate(Options() with { Baseline = BenchBaseline.Read(folder.File("anchor.json")) }, s_rows, soak: null);

        checks.Select(c => (c.Name, c.Passed)).Should().Equal(
            ("full TTFT at 512 tokens no slower than the baseline", true),
            ("full TTFT at 4096 tokens no slower than the baseline", false));
    }

    [Theory]
    [InlineData("--expect-speedup", "0", "--expect-speedup must be positive")]
    [InlineData("--expect-speedup", "fast", "--expect-speedup expects a number")]
    [InlineData("--expect-reencode-share", "150%", "--expect-reencode-share must lie in (0, 1]")]
    [InlineData("--expect-reencode-share", "a third", "--expect-reencode-share expects a fraction such as 0.3 or 30%")]
    [InlineData("--expect-block-ttft", "-5", "--expect-block-ttft must be positive")]
    [InlineData("--concurrency", "1,0", "--concurrency takes comma-separated request counts from 1 to 4096, got '0'")]
    [InlineData("--concurrency", "four", "--concurrency takes comma-separated request counts")]
    [InlineData("--arrival-rate", "0", "--arrival-rate must be positive")]
    [InlineData("--expect-batch-speedup", "-1", "--expect-batch-speedup must be positive")]
    [InlineData("--requests", "4,8", "--requests lists 2 counts for 0 --concurrency levels")]
    [InlineData("--requests", "4,x", "--requests takes a count or one comma-separated count per --concurrency level")]
    public void Bad_expectations_are_exit_2_before_anything_runs(string option, string value, string message)
    {
        var run = CliRun.Of("bench", option, value);

        run.ExitCode.Should().Be(2, run.ToString());
        run.Stderr.Should().Contain(message);
        run.Stdout.Should().BeEmpty();
    }

    [Fact]
    public void A_missing_or_malformed_baseline_is_exit_2_naming_the_file()
    {
        using var folder = new TempDirectory();
        File.WriteAllText(folder.File("bad.json"), """{"rows": [{"L": 512}]}""");

        var missing = CliRun.Of("bench", "--baseline", folder.File("none.json"));
        var malformed = CliRun.Of("bench", "--baseline", folder.File("bad.json"));

        missing.ExitCode.Should().Be(2, missing.ToString());
        missing.Stderr.Should().Contain($"baseline file not found: {folder.File("none.json")}");
        malformed.ExitCode.Should().Be(2, malformed.ToString());
        malformed.Stderr.Should().Contain($"{folder.File("bad.json")}: not a baseline file").And.Contain("full_ms");
    }

    [Fact]
    public void Check_exact_passes_only_a_level_whose_requests_are_all_identical()
    {
        ConcurrencyResult[] levels =
        [
            Level(1, batched: 40, serial: 40) with { ExactChecked = 4, ExactIdentical = 4 },
            Level(8, batched: 120, serial: 40) with { ExactChecked = 8, ExactIdentical = 7, ExactDetail = "request 3 (sampled) differs at token 17 of 32" },
        ];

        var checks = BenchExpectations.Evaluate(Options(), [], soak: null, levels);

        checks.Select(c => (c.Name, c.Passed)).Should().Equal(
            ("batched tokens equal tokens alone at concurrency 1", true),
            ("batched tokens equal tokens alone at concurrency 8", false));
        checks[1].Detail.Should().Contain("7 of 8").And.Contain("token 17");
    }

    [Fact]
    public void First_difference_finds_the_first_unequal_token_or_a_length_difference()
    {
        ConcurrencyRunner.FirstDifference([1, 2, 3], [1, 2, 3]).Should().BeNull();
        ConcurrencyRunner.FirstDifference([1, 2, 3], [1, 5, 3]).Should().Be(1);
        ConcurrencyRunner.FirstDifference([1, 2, 3], [1, 2]).Should().Be(2);
        ConcurrencyRunner.FirstDifference([], [7]).Should().Be(0);
        ConcurrencyRunner.FirstDifference(null, [1]).Should().Be(0);
    }

    [Fact]
    public void The_usage_lists_every_command()
    {
        var run = CliRun.Of("--help");

        run.ExitCode.Should().Be(0);
        foreach (string verb in new[] { "verify", "generate", "tokenize", "bench" })
        {
            run.Stdout.Should().Contain($"blockattn {verb}");
            CliRun.Of(verb, "--help").ExitCode.Should().Be(0, $"'{verb} --help' prints the command's help");
        }
    }

    private static ConcurrencyResult Level(int concurrency, double batched, double serial) => new()
    {
        Concurrency = concurrency,
        Requests = 2 * concurrency,
        OutputTokensPerSecond = batched,
        TtftP50Ms = 100,
        TtftP95Ms = 200,
        TpotP50Ms = 20,
        TpotP95Ms = 30,
        OutputTokens = 64,
        WallMs = 1000,
        Serial = new ConcurrencyResult { OutputTokensPerSecond = serial, TtftP50Ms = 300, TtftP95Ms = 900, TpotP50Ms = 25, TpotP95Ms = 26, OutputTokens = 64, WallMs = 3000 },
        ThroughputRatio = batched / serial,
    };

    private static BenchOptions Options() => new()
    {
        Preset = "smollm2-135m",
        Device = "cpu",
        DType = ScalarType.Float32,
        Lengths = [512, 4096],
        Warmup = 0,
        Repeats = 1,
        DecodeTokens = 0,
        Soak = 0,
        OutDirectory = "unused",
    };

    private static LengthResult Row(int tokens, double full, double block, double reencode) => new()
    {
        Tokens = tokens,
        Passages = 1,
        CachedTokens = tokens - 50,
        FullTtft = Summary.Of([full]),
        FullWall = Summary.Of([full]),
        BlockTtft = Summary.Of([block]),
        BlockWall = Summary.Of([block]),
        ColdTtft = Summary.Of([full]),
        ColdWall = Summary.Of([full]),
        Reencode = Summary.Of([reencode * 2]),
        ReencodeReusedCache = Summary.Of([reencode]),
        FinalForward = Summary.Of([block - reencode]),
        DecodeTokensPerSecond = Summary.Of([]),
        KvBytes = 0,
    };
}
