using System.Diagnostics;
using BlockAttention.Caching.Persistence;
using BlockAttention.Tests.Checkpoints;

namespace BlockAttention.Tests.Caching.Persistence;

/// <summary>Other processes writing to the store's directory: killed mid-write, and racing each other.</summary>
public class FileStoreProcessTests
{
    [Fact]
    public async Task A_writer_killed_mid_write_leaves_only_whole_blocks()
    {
        using var dir = new TempDirectory();
        const int Tokens = 4096; // 16 MiB per block: long enough to be killed inside a write
        using var writer = StartWriter("loop", dir.Path, Tokens);
        using var killer = new KillOnDispose(writer); // never leave a writer running, whatever fails
        var written = new List<int>();
        var writing = Task.Run(() =>
        {
            while (writer.StandardOutput.ReadLine() is { } line)
            {
                lock (written)
                {
                    written.Add(int.Parse(line["wrote ".Length..], System.Globalization.CultureInfo.InvariantCulture));
                }
            }
        });

        // Kill it once it has finished a block and is inside the next one's temporary file.
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            bool finishedOne;
            lock (written)
            {
                finishedOne = written.Count > 0;
            }

            var partial = new DirectoryInfo(dir.Path).GetFiles(".writing-*").FirstOrDefault(f => f.Length > 0);
            if (finishedOne && partial is not null)
            {
                break;
            }

            if (writer.HasExited)
            {
                throw new InvalidOperationException($"the writer exited on its own ({writer.ExitCode}): {await writer.StandardError.ReadToEndAsync()}");
            }

            DateTime.UtcNow.Should().BeBefore(deadline, "the writer should have written a block within a minute");
            await Task.Delay(2);
        }

        writer.Kill();
        await writer.WaitForExitAsync();
        await writing;
        new DirectoryInfo(dir.Path).GetFiles(".writing-*").Should().NotBeEmpty("the writer was killed inside a write");

        var store = FileKvBlockStoreTests.Open(dir.Path); // as the next process would
        new DirectoryInfo(dir.Path).GetFiles(".writing-*").Should().BeEmpty("a dead writer's temporary file is deleted on open");
        int last = written.Max();
        for (int n = 0; n <= last + 1; n++)
        {
            var expected = StoreWriterBlocks.Create(n, Tokens);
            string outcome = await StoredBlocks.LookUpAsync(store, expected);
            expected.Release();
            if (n <= last)
            {
                outcome.Should().Be("hit", $"block {n} was reported written before the kill");
            }
            else
            {
                outcome.Should().BeOneOf(["miss", "hit"], $"block {n} was being written when the writer was killed");
            }
        }

        store.DamagedFiles.Should().Be(0, "no half-written file is ever visible under a block's name");
    }

    [Fact]
    public async Task Two_processes_writing_the_same_block_while_a_third_reads_never_give_a_partial_block()
    {
        using var dir = new TempDirectory();
        const int Tokens = 2048;
        using var first = StartWriter("same", dir.Path, Tokens, 15);
        using var second = StartWriter("same", dir.Path, Tokens, 15);
        using var killFirst = new KillOnDispose(first);
        using var killSecond = new KillOnDispose(second);
        var expected = StoredBlocksOfWriter(Tokens);
        var store = FileKvBlockStoreTests.Open(dir.Path);
        int hits = 0, misses = 0;
        while (!first.HasExited || !second.HasExited)
        {
            string outcome = await StoredBlocks.LookUpAsync(store, expected);
            outcome.Should().NotBe("wrong");
            if (outcome == "hit")
            {
                hits++;
            }
            else
            {
                misses++;
            }
        }

        first.ExitCode.Should().Be(0, first.StandardError.ReadToEnd());
        second.ExitCode.Should().Be(0, second.StandardError.ReadToEnd());
        (await StoredBlocks.LookUpAsync(store, expected)).Should().Be("hit", "the last rename left one whole block");
        store.DamagedFiles.Should().Be(0);
        new DirectoryInfo(dir.Path).GetFiles().Should().ContainSingle("both writers' temporary files were renamed away");
        expected.Release();
        _ = (hits, misses);
    }

    private static BlockAttention.Caching.KvBlock StoredBlocksOfWriter(int tokens) => StoreWriterBlocks.Create(0, tokens);

    /// <summary>Starts the writer helper with this test assembly's runtime config and dependencies.</summary>
    private static Process StartWriter(params object[] args)
    {
        string baseDir = AppContext.BaseDirectory;
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("exec");
        start.ArgumentList.Add("--runtimeconfig");
        start.ArgumentList.Add(Path.Combine(baseDir, "BlockAttention.Tests.runtimeconfig.json"));
        start.ArgumentList.Add("--depsfile");
        start.ArgumentList.Add(Path.Combine(baseDir, "BlockAttention.Tests.deps.json"));
        start.ArgumentList.Add(Path.Combine(baseDir, "BlockAttention.StoreWriter.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(Convert.ToString(arg, System.Globalization.CultureInfo.InvariantCulture)!);
        }

        return Process.Start(start) ?? throw new InvalidOperationException("could not start the writer");
    }

    private sealed class KillOnDispose(Process process) : IDisposable
    {
        public void Dispose()
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill();
                    process.WaitForExit();
                }
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }
    }
}
