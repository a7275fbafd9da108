using System.Diagnostics;
using System.Text.Json;
using BlockAttention.Tests.Caching.Redis;
using BlockAttention.Tests.Checkpoints;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Cli;

/// <summary>
/// <c>blockattn generate --store</c> run twice, in two processes: the second reuses every passage
/// the first encoded, and generates the same tokens.
/// </summary>
public class GenerateStoreProcessTests
{
    private const string Rag = """
        {
          "passages": [
            {"title": "Paris", "text": "Paris is the capital and largest city of France."},
            {"title": "Berlin", "text": "Berlin is the capital of Germany."},
            {"title": "Rome", "text": "Rome is the capital of Italy."}
          ],
          "question": "What is the capital of France?"
        }
        """;

    [Fact]
    public async Task A_second_process_reuses_every_passage_through_the_file_store()
    {
        using var folder = new TempDirectory();
        await AssertSecondProcessReusesAsync(folder, $"file:{folder.File("blocks")}");
        Directory.GetFiles(folder.File("blocks"), "*.kvb").Should().HaveCount(4, "one file per local block");
    }

    [Fact]
    public async Task A_second_process_reuses_every_passage_through_a_memory_tier_in_front_of_the_file_store()
    {
        using var folder = new TempDirectory();
        await AssertSecondProcessReusesAsync(folder, $"memory+file:{folder.File("blocks")}");
    }

    [Fact]
    public async Task A_second_process_reuses_every_passage_through_redis()
    {
        using var server = TestRedisServer.StartRedisOrGarnet();
        using var folder = new TempDirectory();
        await AssertSecondProcessReusesAsync(folder, $"redis:127.0.0.1:{server.Port}");
    }

    private static async Task AssertSecondProcessReusesAsync(TempDirectory folder, string store)
    {
        File.WriteAllText(folder.File("rag.json"), Rag);
        var first = await RunCliAsync(folder, store);
        var second = await RunCliAsync(folder, store);

        first.GetProperty("store").GetString().Should().Be(store);
        first.GetProperty("local_blocks").GetInt32().Should().Be(4, "the instruction block and three passages");
        first.GetProperty("encoded_blocks").GetInt32().Should().Be(4, "the store starts empty");
        second.GetProperty("reused_blocks").GetInt32().Should().Be(4, "the second process finds every block the first one stored");
        second.GetProperty("encoded_blocks").GetInt32().Should().Be(0);
        second.GetProperty("computed_prompt_tokens").GetInt32().Should().BeLessThan(first.GetProperty("computed_prompt_tokens").GetInt32());
        second.GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32())
            .Should().Equal(first.GetProperty("token_ids").EnumerateArray().Select(t => t.GetInt32()), "reused states give the same greedy tokens");
    }

    private static async Task<JsonElement> RunCliAsync(TempDirectory folder, string store)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[]
        {
            Path.Combine(AppContext.BaseDirectory, "blockattn.dll"), "generate", "--model", FixturePaths.Model("tiny-llama3"),
            "--blocks", folder.File("rag.json"), "--max-new-tokens", "4", "--json", "--store", store,
        })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await process.WaitForExitAsync(timeout.Token);
        process.ExitCode.Should().Be(0, $"stdout:\n{await stdout}\nstderr:\n{await stderr}");
        string[] lines = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        lines.Should().ContainSingle();
        return JsonDocument.Parse(lines[0]).RootElement.Clone();
    }
}
