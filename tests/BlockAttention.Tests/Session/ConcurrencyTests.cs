using BlockAttention.Caching;
using BlockAttention.Generation;
using BlockAttention.Prompts;
using BlockAttention.Tests.Fixtures;

namespace BlockAttention.Tests.Session;

/// <summary>One session and one model serving concurrent requests under store pressure.</summary>
public class ConcurrencyTests
{
    [Fact]
    public async Task Eight_parallel_requests_under_eviction_equal_the_same_requests_run_alone()
    {
        var model = TestModels.Get("tiny-llama3");
        var passages = Enumerable.Range(0, 8)
            .Select(i => new RagPassage($"Passage {i}", $"Fact number {i}: the {i}th river flows {i * 7} kilometres north of town {i}."))
            .ToArray();
        var random = new Random(11);
        var prompts = Enumerable.Range(0, 16)
            .Select(i => BlockPrompt.ForRag(passages.OrderBy(_ => random.Next()).Take(random.Next(2, 6)).ToArray(), $"Question {i}?"))
            .ToList();
        var options = new GenerationOptions { MaxNewTokens = 5, StopStrings = [], StopTokenIds = [] };

        var alone = new BlockSession(model);
        var expected = new List<IReadOnlyList<int>>();
        foreach (var prompt in prompts)
        {
            expected.Add((await alone.GenerateAsync(prompt, options)).TokenIds);
        }

        // Room for about three passages: constant eviction while requests read blocks.
        long passageBytes = 2L * model.Info.Layers * model.Info.KvHeads * model.Info.HeadDim * 4 * 30;
        using var store = new MemoryKvBlockStore(new MemoryKvBlockStoreOptions { MaxBytes = passageBytes * 3 });
        var shared = new BlockSession(model, store);
        var results = new GenerationResult[prompts.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, prompts.Count), new ParallelOptions { MaxDegreeOfParallelism = 8 },
            async (i, ct) => results[i] = await shared.GenerateAsync(prompts[i], options, ct));

        for (int i = 0; i < prompts.Count; i++)
        {
            results[i].TokenIds.Should().Equal(expected[i], $"request {i} must not depend on what ran beside it");
        }

        store.Statistics.Evictions.Should().BePositive("the test is meant to run under eviction");
        store.Statistics.Bytes.Should().BeLessThanOrEqualTo(passageBytes * 3);
    }
}
