using System.Diagnostics;
using BlockAttention.Tests.Checkpoints;

namespace BlockAttention.Tests.Inputs;

/// <summary>Makes the files a careless or hostile user could put where a regular file is expected.</summary>
internal static class SpecialFiles
{
    /// <summary>Creates a named pipe (FIFO) at <paramref name="path"/>; nothing ever writes to it.</summary>
    public static void MakeFifo(string path)
    {
        using var process = Process.Start(new ProcessStartInfo("mkfifo", [path]) { RedirectStandardError = true })!;
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"mkfifo {path} failed: {process.StandardError.ReadToEnd()}");
        }
    }

    /// <summary>Links <paramref name="path"/> to <paramref name="target"/> (for example <c>/dev/zero</c>).</summary>
    public static void Link(string path, string target) => File.CreateSymbolicLink(path, target);

    /// <summary>Replaces <paramref name="name"/> in <paramref name="folder"/> with a FIFO or a link to a device.</summary>
    public static void Replace(TempDirectory folder, string name, string kind)
    {
        string path = folder.File(name);
        File.Delete(path);
        if (kind == "fifo")
        {
            MakeFifo(path);
        }
        else
        {
            Link(path, kind);
        }
    }

    /// <summary>A copy of a fixture model folder (every file, byte for byte).</summary>
    public static TempDirectory CopyOfModel(string fixtureFolder)
    {
        var folder = new TempDirectory();
        foreach (string file in Directory.EnumerateFiles(fixtureFolder))
        {
            File.Copy(file, folder.File(Path.GetFileName(file)));
        }

        return folder;
    }

    /// <summary>Runs <paramref name="action"/> on another thread and fails if it has not finished in time: a hang must fail the test, not stall the suite.</summary>
    public static void WithinSeconds(double seconds, Action action)
    {
        var task = Task.Factory.StartNew(action, TaskCreationOptions.LongRunning);
        if (!task.Wait(TimeSpan.FromSeconds(seconds)))
        {
            throw new TimeoutException($"still running after {seconds} s");
        }
    }
}
