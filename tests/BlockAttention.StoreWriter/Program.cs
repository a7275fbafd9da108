using BlockAttention.Caching;
using BlockAttention.Caching.Persistence;
using BlockAttention.Runtime;
using static TorchSharp.torch;

// Usage:
//   loop DIR TOKENS        writes blocks 0, 1, 2, ... (at most 16) of TOKENS tokens each until
//                          killed, printing "wrote N" after each one is in place
//   same DIR TOKENS COUNT  writes block 0 of TOKENS tokens COUNT times (racing another writer)
// Block contents are a pure function of the block number (StoreWriterBlocks), so the test can
// check what it reads against its own copy.
TorchSharpNativeLibrary.EnsureRegistered();
string mode = args[0];
string directory = args[1];
int tokens = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
var store = new FileKvBlockStore(new FileKvBlockStoreOptions { Directory = directory });
if (mode == "loop")
{
    for (int n = 0; n < 16; n++)
    {
        var block = StoreWriterBlocks.Create(n, tokens);
        try
        {
            if (!await store.SetAsync(block))
            {
                return 2;
            }
        }
        finally
        {
            block.Release();
        }

        Console.WriteLine($"wrote {n}");
        Console.Out.Flush();
    }

    return 3; // not killed in time
}

int count = int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);
var same = StoreWriterBlocks.Create(0, tokens);
for (int i = 0; i < count; i++)
{
    if (!await store.SetAsync(same))
    {
        return 2;
    }
}

same.Release();
Console.WriteLine("done");
return 0;

/// <summary>The blocks the writer writes; the tests build the same ones to compare.</summary>
public static class StoreWriterBlocks
{
    public const string Fingerprint = "store-writer-test-model";
    public const int Layers = 4;
    public const int KvHeads = 2;
    public const int HeadDim = 64;

    public static int[] Tokens(int n, int count) => Enumerable.Range(0, count).Select(i => n * 100_000 + i).ToArray();

    public static KvBlock Create(int n, int count)
    {
        int[] tokens = Tokens(n, count);
        long[] shape = [Layers, KvHeads, count, HeadDim];
        long numel = shape.Aggregate(1L, (a, b) => a * b);
        var keys = arange(numel, ScalarType.Float32).mul(1e-3).add(n).reshape(shape);
        var values = arange(numel, ScalarType.Float32).mul(-1e-3).sub(n).reshape(shape);
        return new KvBlock(BlockKey.For(Fingerprint, tokens), tokens, keys, values);
    }
}
