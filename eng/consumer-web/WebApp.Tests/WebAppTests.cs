// The tests of the ASP.NET Core consumer app (see ../WebApp/Program.cs): the app as it runs, its
// reuse read from its responses and from the BlockAttention meter.
using System.Diagnostics.Metrics;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Xunit;
using Xunit.Abstractions;

public class WebAppTests(WebApplicationFactory<Program> factory, ITestOutputHelper output) : IClassFixture<WebApplicationFactory<Program>>
{
    private static readonly string[] s_passages =
    [
        "- Title: Radium\nRadium is a chemical element with the symbol Ra and atomic number 88.\n",
        "- Title: Marie Curie\nMarie Curie discovered radium and polonium with Pierre Curie in 1898.\n",
    ];

    [Fact]
    public async Task The_second_request_over_the_same_passages_reuses_them_and_the_meter_shows_ttft_and_hits()
    {
        var meters = factory.Services.GetRequiredService<IMeterFactory>();
        using var ttft = new MetricCollector<double>(meters, "BlockAttention", "blockattention.time_to_first_token");
        using var hits = new MetricCollector<long>(meters, "BlockAttention", "blockattention.store.hits");
        using var client = factory.CreateClient();

        var first = await Ask(client, "Who discovered radium?");
        var second = await Ask(client, "What is the symbol of radium?");

        Assert.Equal(0, first.CachedInputTokens);
        Assert.True(second.CachedInputTokens > 0, $"cached input tokens {second.CachedInputTokens}");
        Assert.True(second.CachedInputTokens < second.InputTokens);
        var times = ttft.GetMeasurementSnapshot();
        Assert.Equal(2, times.Count);
        Assert.All(times, m => Assert.True(m.Value > 0 && (string?)m.Tags["blockattention.mode"] == "block"));
        hits.RecordObservableInstruments();
        Assert.True(hits.LastMeasurement!.Value >= s_passages.Length, $"store hits {hits.LastMeasurement.Value}");
        output.WriteLine($"web-consumer: second request cached {second.CachedInputTokens} of {second.InputTokens} input tokens; " +
            $"TTFT {times[0].Value * 1000:F1} ms then {times[1].Value * 1000:F1} ms; store hits {hits.LastMeasurement.Value}");
    }

    [Fact]
    public async Task The_streamed_answer_is_the_whole_answer()
    {
        using var client = factory.CreateClient();

        var whole = await Ask(client, "Who worked with Marie Curie?");
        using var streamed = await client.PostAsJsonAsync("/ask/stream", new { passages = s_passages, question = "Who worked with Marie Curie?" });
        streamed.EnsureSuccessStatusCode();

        Assert.Equal(whole.Text, await streamed.Content.ReadAsStringAsync());
    }

    private static async Task<Answer> Ask(HttpClient client, string question)
    {
        using var response = await client.PostAsJsonAsync("/ask", new { passages = s_passages, question });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<Answer>())!;
    }

    private sealed record Answer(string Text, long InputTokens, long CachedInputTokens, string? FinishReason);
}
