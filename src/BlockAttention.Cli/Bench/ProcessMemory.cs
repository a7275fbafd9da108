using System.Diagnostics;

namespace BlockAttention.Cli.Bench;

/// <summary>
/// The process's resident memory from <c>/proc/self/status</c>: VmRSS now and VmHWM, the peak,
/// which Linux lets a process reset (write 5 to <c>/proc/self/clear_refs</c>) so that each prompt
/// length gets its own peak rather than the run's.
/// </summary>
internal static class ProcessMemory
{
    public static long CurrentBytes() => ReadStatus("VmRSS:") ?? Environment.WorkingSet;

    public static long PeakBytes()
    {
        if (ReadStatus("VmHWM:") is long peak)
        {
            return peak;
        }

        using var process = Process.GetCurrentProcess();
        return process.PeakWorkingSet64;
    }

    /// <summary>Starts a new peak from the current resident set; false where the kernel does not allow it.</summary>
    public static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Total memory of the machine (MemTotal), if known.</summary>
    public static long? MachineBytes() => ReadKilobytes("/proc/meminfo", "MemTotal:");

    /// <summary>The 1-minute load average (<c>/proc/loadavg</c>), if known.</summary>
    public static double? LoadAverage()
    {
        try
        {
            string first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.Parse(first, System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    private static long? ReadStatus(string field) => ReadKilobytes("/proc/self/status", field);

    private static long? ReadKilobytes(string path, string field)
    {
        try
        {
            foreach (string line in File.ReadLines(path))
            {
                if (line.StartsWith(field, StringComparison.Ordinal))
                {
                    // "VmHWM:     123456 kB"
                    string number = line[field.Length..].Trim().Split(' ')[0];
                    return long.Parse(number, System.Globalization.CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
        }

        return null;
    }
}
