using System.Diagnostics;
using BlockAttention.AI;
using BlockAttention.Caching;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace BlockAttention.Extensions.AI.Tests;

/// <summary>The client inside a Microsoft.Extensions.AI pipeline, with the ecosystem's logging and OpenTelemetry layers.</summary>
public class ChatClientPipelineTests
{
    [Fact]
    public async Task Works_under_UseLogging_and_UseOpenTelemetry_which_see_its_usage()
    {
        string sourceName = "pipeline-test-" + Guid.NewGuid().ToString("N");
        var activities = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == sourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activities.Add,
        };
        ActivitySource.AddActivityListener(listener);
        var logs = new FakeLogCollector();
        using var loggerFactory = LoggerFactory.Create(b => b.SetMinimumLevel(LogLevel.Trace).AddProvider(new FakeLoggerProvider(logs)));
        using var session = new BlockSession(Fixtures.Model(), new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = 16L << 20 }));

        using var client = new ChatClientBuilder(session.AsChatClient())
            .UseLogging(loggerFactory)
            .UseOpenTelemetry(sourceName: sourceName)
            .Build();
        List<AIChatMessage> messages = [new(ChatRole.User, [BlockAttentionChatClient.Passage("Radium is element 88.\n"), new TextContent("Which element?")])];
        var response = await client.GetResponseAsync(messages, new ChatOptions { MaxOutputTokens = 3 });

        var activity = activities.Should().ContainSingle().Subject;
        activity.GetTagItem("gen_ai.usage.input_tokens").Should().Be((int)response.Usage!.InputTokenCount!.Value);
        activity.GetTagItem("gen_ai.usage.output_tokens").Should().Be((int)response.Usage.OutputTokenCount!.Value);
        activity.GetTagItem("gen_ai.provider.name").Should().Be("blockattention");
        logs.GetSnapshot().Should().Contain(r => r.Message.Contains(nameof(IChatClient.GetResponseAsync)), "UseLogging logs the invocation");
    }
}
