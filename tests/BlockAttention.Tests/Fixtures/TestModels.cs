using System.Collections.Concurrent;
using BlockAttention.Llama;

namespace BlockAttention.Tests.Fixtures;

/// <summary>The fixture models, loaded once per test run (float32 on the CPU) and shared: a model is immutable.</summary>
internal static class TestModels
{
    private static readonly ConcurrentDictionary<string, Lazy<LlamaModel>> s_models = new();

    public static LlamaModel Get(string name) =>
        s_models.GetOrAdd(name, n => new Lazy<LlamaModel>(() => LlamaModel.Load(FixturePaths.Model(n)))).Value;
}
