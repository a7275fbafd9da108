using BlockAttention.IO;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Llama.Tokenization;
using SharpFuzz;

namespace BlockAttention.Fuzz;

/// <summary>
/// Fuzz targets for the readers of untrusted checkpoint files. Each target writes the fuzzer's input
/// to a file and reads it as the library does; a documented refusal is a normal outcome, any other
/// exception is a crash for the fuzzer to keep.
/// </summary>
/// <remarks>
/// <c>BlockAttention.Fuzz TARGET</c> runs under afl-fuzz (see <c>eng/fuzz.sh</c>);
/// <c>BlockAttention.Fuzz TARGET --replay FILE...</c> runs saved inputs once each and prints the outcome,
/// to triage what the fuzzer found.
/// </remarks>
public static class Program
{
    private static readonly string[] Targets = ["safetensors", "tokenizer"];

    public static int Main(string[] args)
    {
        if (args.Length == 0 || !Targets.Contains(args[0]))
        {
            Console.Error.WriteLine($"usage: BlockAttention.Fuzz {string.Join('|', Targets)} [--replay FILE...]");
            return 2;
        }

        string folder = Directory.CreateTempSubdirectory("blockattn-fuzz-").FullName;
        Action<byte[]> target = args[0] == "safetensors"
            ? input => Safetensors(input, Path.Combine(folder, "model.safetensors"))
            : input => Tokenizer(input, Path.Combine(folder, "tokenizer.json"));

        if (args.Length > 1 && args[1] == "--replay")
        {
            int crashes = 0;
            foreach (string file in args.Skip(2))
            {
                try
                {
                    target(File.ReadAllBytes(file));
                    Console.WriteLine($"{file}: no crash");
                }
                catch (Exception e)
                {
                    crashes++;
                    Console.WriteLine($"{file}: CRASH {e}");
                }
            }

            return crashes == 0 ? 0 : 1;
        }

        Fuzzer.OutOfProcess.Run(stream =>
        {
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            target(buffer.ToArray());
        });
        return 0;
    }

    /// <summary>Opens a safetensors file and reads the first and last bytes of every tensor.</summary>
    private static void Safetensors(byte[] input, string path)
    {
        File.WriteAllBytes(path, input);
        try
        {
            using var file = SafetensorsFile.Open(path);
            byte[] chunk = new byte[256];
            foreach (string name in file.TensorNames)
            {
                SafetensorsTensorInfo info = file.GetInfo(name);
                int length = (int)Math.Min(info.ByteLength, chunk.Length);
                file.ReadInto(name, 0, chunk.AsSpan(0, length));
                file.ReadInto(name, info.ByteLength - length, chunk.AsSpan(0, length));
            }
        }
        catch (CheckpointFormatException)
        {
            // The documented refusal of a malformed file.
        }
    }

    /// <summary>Loads a tokenizer.json and round-trips a short text through it.</summary>
    private static void Tokenizer(byte[] input, string path)
    {
        File.WriteAllBytes(path, input);
        try
        {
            LlamaTokenizer tokenizer = LlamaTokenizer.FromFile(path);
            IReadOnlyList<int> ids = tokenizer.Encode("Hi the 12<|eot_id|>\u00e9");
            if (ids.Any(id => id < 0 || id >= tokenizer.VocabSize))
            {
                throw new InvalidOperationException("an id outside the vocabulary");
            }

            tokenizer.Decode(ids);
        }
        catch (Exception e) when (e is TokenizerFormatException or InputFileException)
        {
            // The documented refusal of a malformed file.
        }
    }
}
