using BlockAttention;
using System.Diagnostics.Metrics;
using BlockAttention.AI;
using System.Net;
using System.Net.Sockets;
using BlockAttention.Caching;
using BlockAttention.Caching.Persistence;
using BlockAttention.Diagnostics;
using BlockAttention.Hosting;
using BlockAttention.Llama;
using BlockAttention.Models;
using BlockAttention.Redis;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;

namespace BlockAttention.Extensions.AI.Tests;

/// <summary>AddBlockAttention in a generic host, configured as an app would from its "BlockAttention" section.</summary>
public class AddBlockAttentionTests
{
    private static IHost BuildHost(Dictionary<string, string?> settings, FakeLogCollector? logs = null, Action<IServiceCollection>? services = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Configuration.AddInMemoryCollection(settings);
        if (logs is not null)
        {
            builder.Logging.SetMinimumLevel(LogLevel.Debug).AddProvider(new FakeLoggerProvider(logs));
        }

        builder.Services.AddBlockAttention(builder.Configuration.GetSection("BlockAttention"));
        services?.Invoke(builder.Services);
        return builder.Build();
    }

    private static Dictionary<string, string?> Settings(params (string Key, string? Value)[] overrides)
    {
        var settings = new Dictionary<string, string?>
        {
            ["BlockAttention:Model"] = Fixtures.ModelPath(),
            ["BlockAttention:Device"] = "cpu",
            ["BlockAttention:DType"] = "float32",
            ["BlockAttention:StoreMaxTokens"] = "100000",
        };
        foreach (var (key, value) in overrides)
        {
            settings["BlockAttention:" + key] = value;
        }

        return settings;
    }

    [Fact]
    public async Task A_host_loads_the_model_at_start_and_answers_through_IChatClient_with_reuse_on_the_second_request()
    {
        var logs = new FakeLogCollector();
        using var host = BuildHost(Settings(("ModelId", "tiny")), logs);

        await host.StartAsync();
        logs.GetSnapshot().Should().Contain(r => r.Level == LogLevel.Information && r.Message.StartsWith("Loaded "),
            "the hosted service loads the model before any request");

        var meters = host.Services.GetRequiredService<IMeterFactory>();
        using var ttft = new MetricCollector<double>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.TimeToFirstToken);
        using var hits = new MetricCollector<long>(meters, BlockAttentionDiagnostics.Name, BlockAttentionDiagnostics.StoreHits);
        var client = host.Services.GetRequiredService<IChatClient>();
        var model = host.Services.GetRequiredService<ICausalLanguageModel>();
        host.Services.GetRequiredService<LlamaModel>().Should().BeSameAs(model);
        var store = host.Services.GetRequiredService<IKvBlockStore>().Should().BeOfType<MemoryKvBlockStore>().Subject;
        client.GetService<BlockSession>().Should().BeSameAs(host.Services.GetRequiredService<BlockSession>());

        List<AIChatMessage> Ask(string question) =>
            [new(ChatRole.User, [BlockAttentionChatClient.Passage("Radium is element 88.\n"), new TextContent(question)])];
        var first = await client.GetResponseAsync(Ask("Which element?"), new ChatOptions { MaxOutputTokens = 2 });
        var second = await client.GetResponseAsync(Ask("Which number?"), new ChatOptions { MaxOutputTokens = 2, ModelId = "tiny" });

        first.Usage!.CachedInputTokenCount.Should().Be(0);
        second.Usage!.CachedInputTokenCount.Should().BeGreaterThan(0);
        store.Statistics.Hits.Should().BeGreaterThan(0);
        ttft.GetMeasurementSnapshot().Should().HaveCount(2).And.OnlyContain(m => m.Value > 0 && (string?)m.Tags[BlockAttentionDiagnostics.ModeTag] == "block");
        hits.RecordObservableInstruments();
        hits.LastMeasurement!.Value.Should().Be(store.Statistics.Hits);
        await host.StopAsync();
    }

    [Fact]
    public async Task The_store_size_in_tokens_is_converted_with_the_model_s_bytes_per_token()
    {
        using var host = BuildHost(Settings(("StoreMaxTokens", "1000")));
        var model = host.Services.GetRequiredService<ICausalLanguageModel>();
        var store = (MemoryKvBlockStore)host.Services.GetRequiredService<IKvBlockStore>();
        long perToken = model.Info.KvBytesPerToken;

        // A block of 600 tokens fits in 1000 tokens' worth; a second one forces the first out.
        var ids = Enumerable.Range(1000, 600).ToArray();
        var a = KvBlock.Encode(model, ids);
        var b = KvBlock.Encode(model, ids.Select(i => i + 1).ToArray());
        (await store.SetAsync(a)).Should().BeTrue();
        (await store.SetAsync(b)).Should().BeTrue();
        store.Statistics.Bytes.Should().Be(600 * perToken);
        store.Statistics.Evictions.Should().Be(1);
        a.Release();
        b.Release();
    }

    [Theory]
    [InlineData("Device", "gpu", "BlockAttention:Device")]
    [InlineData("Store", "disk:/var/cache", "BlockAttention:Store")]
    [InlineData("Store", "none", "BlockAttention:Store")]
    [InlineData("Store", "redis:localhost:99999", "BlockAttention:Store")]
    [InlineData("Store", "file:", "BlockAttention:Store")]
    [InlineData("StoreFileMaxBytes", "0", "BlockAttention:StoreFileMaxBytes")]
    [InlineData("Store", "memory+redis:localhost:6379", "BlockAttention:Store")] // without AddBlockAttentionRedis
    [InlineData("StoreMaxBytes", "-5", "BlockAttention:StoreMaxBytes")]
    [InlineData("ChatFormat", "chatml", "BlockAttention:ChatFormat")]
    [InlineData("IdleCaches", "-1", "BlockAttention:IdleCaches")]
    [InlineData("MaxBatchSize", "0", "BlockAttention:MaxBatchSize")]
    [InlineData("MaxQueuedRequests", "-1", "BlockAttention:MaxQueuedRequests")]
    [InlineData("PrefillChunkTokens", "0", "BlockAttention:PrefillChunkTokens")]
    [InlineData("MaxCacheBytes", "0", "BlockAttention:MaxCacheBytes")]
    [InlineData("StepThreads", "0", "BlockAttention:StepThreads")]
    [InlineData("Model", "/no/such/folder", "BlockAttention:Model")]
    [InlineData("Model", null, "BlockAttention:Model")]
    public async Task Bad_settings_stop_the_host_at_start_naming_the_setting(string key, string? value, string named)
    {
        using var host = BuildHost(Settings((key, value)));

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Contain(named);
    }

    [Fact]
    public async Task Both_store_sizes_at_once_are_refused()
    {
        using var host = BuildHost(Settings(("StoreMaxBytes", "1000000")));

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Contain("both");
    }

    [Fact]
    public async Task A_dtype_that_is_not_one_of_ours_names_the_key()
    {
        using var host = BuildHost(Settings(("DType", "int8")));

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<InvalidOperationException>()).Which.Message.Should().Contain("BlockAttention:DType");
    }

    [Fact]
    public void Options_from_a_delegate_register_the_same_services_and_parse_the_chat_format()
    {
        var services = new ServiceCollection();
        services.AddBlockAttention(o =>
        {
            o.Model = Fixtures.ModelPath();
            o.ChatFormat = "tulu";
            o.DType = ModelDType.Float32;
        });
        using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<BlockAttentionChatClient>();
        client.Format.Name.Should().Be("tulu");
        client.Metadata.DefaultModelId.Should().Be("tiny-llama3", "the model id defaults to the checkpoint folder's name");
        provider.GetRequiredService<IChatClient>().Should().BeSameAs(client);
    }

    [Fact]
    public async Task The_batching_settings_from_configuration_bound_the_session()
    {
        using var host = BuildHost(Settings(("MaxBatchSize", "1"), ("MaxQueuedRequests", "0"), ("PrefillChunkTokens", "4"), ("MaxCacheBytes", "100000000"), ("StepThreads", "1")));
        await host.StartAsync();
        var client = host.Services.GetRequiredService<IChatClient>();

        // One request at a time and no queue: a second request while the first streams is refused at once.
        await using (var first = client.GetStreamingResponseAsync(AskAbout("Which element?"), new ChatOptions { MaxOutputTokens = 64 }).GetAsyncEnumerator())
        {
            (await first.MoveNextAsync()).Should().BeTrue();
            var second = () => client.GetResponseAsync(AskAbout("Which number?"), new ChatOptions { MaxOutputTokens = 2 });
            await second.Should().ThrowAsync<SessionBusyException>();
        }

        (await client.GetResponseAsync(AskAbout("Which number?"), new ChatOptions { MaxOutputTokens = 2 })).Text.Should().NotBeNull("the place is free again");
        await host.StopAsync();

        // The cache bound: a request whose KV cache could never fit names the setting's value.
        using var small = BuildHost(Settings(("MaxCacheBytes", "1000")));
        await small.StartAsync();
        var tooLarge = () => small.Services.GetRequiredService<IChatClient>().GetResponseAsync(AskAbout("Which element?"), new ChatOptions { MaxOutputTokens = 2 });
        (await tooLarge.Should().ThrowAsync<ArgumentException>()).Which.Message.Should().Contain("MaxCacheBytes of 1000");
        await small.StopAsync();
    }

    private static List<AIChatMessage> AskAbout(string question) =>
        [new(ChatRole.User, [BlockAttentionChatClient.Passage("Radium is element 88; it glows faintly in the dark.\n"), new TextContent(question)])];

    [Fact]
    public async Task A_file_store_from_configuration_keeps_passages_for_the_next_host_on_the_same_folder()
    {
        string folder = Path.Combine(Path.GetTempPath(), "stores-ai-" + Guid.NewGuid().ToString("N"));
        try
        {
            var settings = Settings(("Store", "file:" + folder));
            using (var first = BuildHost(settings))
            {
                await first.StartAsync();
                var store = first.Services.GetRequiredService<IKvBlockStore>().Should().BeOfType<FileKvBlockStore>().Subject;
                var answer = await first.Services.GetRequiredService<IChatClient>().GetResponseAsync(AskAbout("Which element?"), new ChatOptions { MaxOutputTokens = 2 });
                answer.Usage!.CachedInputTokenCount.Should().Be(0, "the folder was empty");
                store.Statistics.Entries.Should().BeGreaterThan(0);
                await first.StopAsync();
            }

            Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Should().NotBeEmpty("the passage was written to the folder");

            // A new host (a restarted app): nothing in its memory, the passage comes from the folder.
            using var second = BuildHost(settings);
            await second.StartAsync();
            var again = await second.Services.GetRequiredService<IChatClient>().GetResponseAsync(AskAbout("Which number?"), new ChatOptions { MaxOutputTokens = 2 });
            again.Usage!.CachedInputTokenCount.Should().BeGreaterThan(0, "the first host's passage is read back from the folder");
            second.Services.GetRequiredService<IKvBlockStore>().Statistics.Hits.Should().BeGreaterThan(0);
            await second.StopAsync();
        }
        finally
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }

    [Fact]
    public async Task A_memory_tier_in_front_of_a_file_tier_is_a_tiered_store_sized_by_the_store_settings()
    {
        string folder = Path.Combine(Path.GetTempPath(), "stores-ai-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var host = BuildHost(Settings(("Store", "memory+file:" + folder))))
            {
                await host.StartAsync();
                host.Services.GetRequiredService<IKvBlockStore>().Should().BeOfType<TieredKvBlockStore>();
                var client = host.Services.GetRequiredService<IChatClient>();
                await client.GetResponseAsync(AskAbout("Which element?"), new ChatOptions { MaxOutputTokens = 2 });
                var second = await client.GetResponseAsync(AskAbout("Which number?"), new ChatOptions { MaxOutputTokens = 2 });
                second.Usage!.CachedInputTokenCount.Should().BeGreaterThan(0);
                await host.StopAsync();
            } // disposing the host finishes the writes behind

            var file = new FileKvBlockStore(new FileKvBlockStoreOptions { Directory = folder });
            file.Statistics.Entries.Should().BeGreaterThan(0, "the memory tier wrote the passage behind to the folder");
        }
        finally
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }

    [Fact]
    public async Task A_redis_store_whose_server_is_down_still_answers_by_encoding()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        } // closed: nothing listens on the port

        using var host = BuildHost(Settings(("Store", $"redis:127.0.0.1:{port}")),
            services: s => s.AddBlockAttentionRedis(new RedisKvBlockStoreOptions { KeyPrefix = "test:", OperationTimeout = TimeSpan.FromMilliseconds(500) }));
        await host.StartAsync();
        host.Services.GetRequiredService<IKvBlockStore>().Should().BeOfType<RedisKvBlockStore>();

        var started = System.Diagnostics.Stopwatch.StartNew();
        var answer = await host.Services.GetRequiredService<IChatClient>().GetResponseAsync(AskAbout("Which element?"), new ChatOptions { MaxOutputTokens = 2 });

        answer.Text.Should().NotBeNull();
        answer.Usage!.CachedInputTokenCount.Should().Be(0, "nothing could be fetched");
        started.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(30), "an unreachable server costs a timeout, never a hang");
        await host.StopAsync();
    }
}
