using BlockAttention.Attention;
using BlockAttention.Caching;
using BlockAttention.Tests.Fixtures;
using static TorchSharp.torch;

namespace BlockAttention.Tests.Session;

/// <summary>
/// The two formulations of Block-Attention agree on random prompts: blocks encoded alone,
/// re-rotated and assembled, against one forward pass with the block-diagonal mask.
/// </summary>
public class CachedVersusOnePassTests
{
    [Theory]
    [InlineData("tiny-llama2", 1)]
    [InlineData("tiny-llama2", 2)]
    [InlineData("tiny-llama2", 3)]
    [InlineData("tiny-llama3", 4)]
    [InlineData("tiny-llama3", 5)]
    public void Cached_path_equals_the_masked_one_pass_path_on_random_blocks(string model, int seed)
    {
        var llama = TestModels.Get(model);
        var random = new Random(seed);
        // Random sizes, including 1-token local blocks and, every other seed, a 1-token final block.
        var lengths = Enumerable.Range(0, random.Next(2, 7)).Select(_ => random.Next(0, 3) == 0 ? 1 : random.Next(2, 40)).ToList();
        lengths.Add(seed % 2 == 0 ? 1 : random.Next(2, 20));
        var blocks = lengths.Select(n => Enumerable.Range(0, n).Select(_ => random.Next(0, Math.Min(llama.Info.VocabSize, 120000))).ToArray()).ToList();
        int total = lengths.Sum(), final = lengths[^1];

        using var onePassCache = llama.CreateCache(total);
        using var mask = BlockMask.Create(lengths);
        using var expected = llama.Forward([.. blocks.SelectMany(b => b)], onePassCache, final, mask)!;

        using var cache = llama.CreateCache(total);
        var encoded = blocks[..^1].Select(tokens => Encode(llama, tokens)).ToList();
        BlockAssembler.Assemble(encoded, llama.Rotary, cache);
        using var actual = llama.Forward(blocks[^1], cache, final)!;
        encoded.ForEach(b => b.Release());

        GoldenTensors.MaxAbsDiff(actual, expected).Should().BeLessThanOrEqualTo(1e-4, $"block lengths [{string.Join(", ", lengths)}]");
        cache.Length.Should().Be(total);
    }

    [Fact]
    public void Assembled_cache_holds_each_block_rotated_to_its_offset_and_values_unchanged()
    {
        var llama = TestModels.Get("tiny-llama2");
        int[] first = [5, 6, 7], second = [8, 9, 10, 11];
        var blocks = new[] { Encode(llama, first), Encode(llama, second) };
        using var cache = llama.CreateCache(7);

        BlockAssembler.Assemble(blocks, llama.Rotary, cache);

        using var expectedKeys = llama.Rotary.RotateBy(blocks[1].Keys, 3);
        using var keys = cache.AllKeys.narrow(2, 3, 4);
        using var values = cache.AllValues.narrow(2, 3, 4);
        GoldenTensors.MaxAbsDiff(keys, expectedKeys).Should().Be(0);
        GoldenTensors.MaxAbsDiff(values, blocks[1].Values).Should().Be(0);
        using var firstKeys = cache.AllKeys.narrow(2, 0, 3);
        GoldenTensors.MaxAbsDiff(firstKeys, blocks[0].Keys).Should().Be(0, "a block at offset 0 is copied as it is");
        foreach (var block in blocks)
        {
            block.Release();
        }
    }

    internal static KvBlock Encode(BlockAttention.Llama.LlamaModel llama, int[] tokens) => KvBlock.Encode(llama, tokens);
}
