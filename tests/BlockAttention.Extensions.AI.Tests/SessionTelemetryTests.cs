using System.Diagnostics;
using System.Diagnostics.Metrics;
using BlockAttention.Caching;
using BlockAttention.Diagnostics;
using BlockAttention.Generation;
using BlockAttention.Prompts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace BlockAttention.Extensions.AI.Tests;

/// <summary>The session's meter, spans and logs, read back as recorded.</summary>
public class SessionTelemetryTests
{
    private static readonly RagPassage[] s_passages =
    [
        new("Radium", "Radium is a chemical element with the symbol Ra and atomic number 88."),
        new("Marie Curie", "Marie Curie discovered radium and polonium with Pierre Curie."),
        new("Polonium", "Polonium is a chemical element with the symbol Po."),
    ];

    private static readonly GenerationOptions s_greedy = new() { MaxNewTokens = 5, StopStrings = [], StopTokenIds = [] };

    private static IMeterFactory NewMeterFactory() => new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();

    [Fact]
    public async Task The_meter_records_each_request_s_ttft_tokens_and_blocks_and_observes_the_store()
    {
        var model = Fixtures.Model();
        var meters = NewMeterFactory();
        using var ttft = new MetricCollector<double>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.TimeToFirstToken);
        using var prompt = new MetricCollector<long>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.PromptTokens);
        using var computed = new MetricCollector<long>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.ComputedPromptTokens);
        using var generated = new MetricCollector<long>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.GeneratedTokens);
        using var reused = new MetricCollector<long>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.BlocksReused);
        using var encoded = new MetricCollector<long>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.BlocksEncoded);
        using var speed = new MetricCollector<double>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.DecodeTokensPerSecond);
        using var hits = new MetricCollector<long>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.StoreHits);
        using var misses = new MetricCollector<long>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.StoreMisses);
        using var bytes = new MetricCollector<long>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.StoreBytes);
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });
        using var session = new BlockSession(model, store, new BlockSessionOptions { MeterFactory = meters });
        var rag = BlockPrompt.ForRag(s_passages, "Who discovered radium?");

        var cold = await session.GenerateAsync(rag, s_greedy);
        var warm = await session.GenerateAsync(rag, s_greedy);
        var full = await session.GenerateAsync(rag, s_greedy with { Mode = AttentionMode.Full });

        ttft.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(
            cold.TimeToFirstToken.TotalSeconds, warm.TimeToFirstToken.TotalSeconds, full.TimeToFirstToken.TotalSeconds);
        ttft.GetMeasurementSnapshot().Select(m => m.Tags[BlockAttentionDiagnostics.ModeTag]).Should().Equal("block", "block", "full");
        int local = s_passages.Length + 1; // the instruction block and one block per passage
        int localTokens = rag.Blocks.Take(local).Sum(b => model.Tokenizer!.Encode(b.Text!).Count);
        int allTokens = rag.Blocks.Sum(b => model.Tokenizer!.Encode(b.Text!).Count);
        prompt.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(allTokens, allTokens, allTokens);
        computed.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(allTokens, allTokens - localTokens, allTokens);
        generated.GetMeasurementSnapshot().Sum(m => m.Value).Should().Be(15, "three requests of five tokens, no stops");
        encoded.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(local);
        reused.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(local);
        speed.GetMeasurementSnapshot().Select(m => m.Value).Should().Equal(cold.TokensPerSecond, warm.TokensPerSecond, full.TokensPerSecond);

        hits.RecordObservableInstruments();
        misses.RecordObservableInstruments();
        bytes.RecordObservableInstruments();
        hits.LastMeasurement!.Value.Should().Be(local);
        misses.LastMeasurement!.Value.Should().Be(local);
        bytes.LastMeasurement!.Value.Should().Be(localTokens * model.Info.KvBytesPerToken);
    }

    [Fact]
    public async Task A_request_has_a_span_per_step_under_its_generate_span()
    {
        var activities = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == BlockAttentionDiagnostics.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (activities) { activities.Add(a); } },
        };
        ActivitySource.AddActivityListener(listener);
        using var testSource = new ActivitySource("span-test-" + Guid.NewGuid().ToString("N"));
        using var testListener = new ActivityListener
        {
            ShouldListenTo = source => source == testSource,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
        };
        ActivitySource.AddActivityListener(testListener);
        using var session = new BlockSession(Fixtures.Model(), new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 }));

        ActivityTraceId trace;
        using (var root = testSource.StartActivity("test")!)
        {
            trace = root.TraceId;
            await session.GenerateAsync(BlockPrompt.ForRag(s_passages, "Who?"), s_greedy);
        }

        List<Activity> ours;
        lock (activities)
        {
            ours = activities.Where(a => a.TraceId == trace).ToList();
        }

        var generate = ours.Should().ContainSingle(a => a.OperationName == BlockAttentionDiagnostics.GenerateActivity).Subject;
        var children = ours.Where(a => a != generate).ToList();
        children.Should().OnlyContain(a => a.ParentSpanId == generate.SpanId);
        children.Select(a => a.OperationName).Should().BeEquivalentTo(
        [
            BlockAttentionDiagnostics.TokenizeActivity,
            .. Enumerable.Repeat(BlockAttentionDiagnostics.LookupActivity, 4),
            .. Enumerable.Repeat(BlockAttentionDiagnostics.EncodeActivity, 4),
            BlockAttentionDiagnostics.AssembleActivity, BlockAttentionDiagnostics.FinalBlockActivity, BlockAttentionDiagnostics.DecodeActivity,
        ]);
        generate.GetTagItem(BlockAttentionDiagnostics.ModeTag).Should().Be("block");
    }

    [Fact]
    public async Task Store_decisions_are_logged_at_debug_and_nothing_per_token_at_information()
    {
        var logs = new FakeLogCollector();
        using var loggers = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(new FakeLoggerProvider(logs)));
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 64L << 20 });
        using var session = new BlockSession(Fixtures.Model(), store, new BlockSessionOptions { LoggerFactory = loggers });
        var rag = BlockPrompt.ForRag(s_passages, "Who?");

        await session.GenerateAsync(rag, s_greedy with { MaxNewTokens = 12 });
        await session.GenerateAsync(rag, s_greedy with { MaxNewTokens = 12 });

        var records = logs.GetSnapshot();
        records.Should().OnlyContain(r => r.Level == LogLevel.Debug);
        records.Count(r => r.Message.Contains("not in the store")).Should().Be(4);
        records.Count(r => r.Message.Contains("stored for later")).Should().Be(4);
        records.Count(r => r.Message.Contains("found in the store")).Should().Be(4);
    }

    [Fact]
    public async Task A_failing_store_is_logged_as_a_warning_and_the_request_goes_on_without_reuse()
    {
        var logs = new FakeLogCollector();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(new FakeLoggerProvider(logs)));
        var model = Fixtures.Model();
        using var session = new BlockSession(model, new FailingStore(), new BlockSessionOptions { LoggerFactory = loggers });
        var rag = BlockPrompt.ForRag(s_passages, "Who?");

        var result = await session.GenerateAsync(rag, s_greedy);
        var alone = await new BlockSession(model).GenerateAsync(rag, s_greedy);

        result.EncodedBlocks.Should().Be(4);
        result.TokenIds.Should().Equal(alone.TokenIds);
        logs.GetSnapshot().Where(r => r.Level == LogLevel.Warning).Should().HaveCount(8, "four failed lookups and four failed stores")
            .And.OnlyContain(r => r.Exception is IOException);
    }

    /// <summary>A store whose backend is down: every call fails.</summary>
    private sealed class FailingStore : IKvBlockStore
    {
        public KvBlockStoreStatistics Statistics => default;

        public ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default) =>
            throw new IOException("connection refused");

        public ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default) => throw new IOException("connection refused");

        public ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default) => throw new IOException("connection refused");
    }
}
