using System.Diagnostics;
using System.Globalization;

namespace BlockAttention.Cli.Bench;

/// <summary>
/// How much of the machine's CPU other processes used while a measurement ran: busy time of all
/// cores (<c>/proc/stat</c>) minus this process's own (<c>/proc/self/stat</c>), over the
/// elapsed time of all cores. On a shared machine, CPU timings taken while others used a large
/// share are not comparable with quiet ones; the reports say so instead of hiding it.
/// </summary>
internal sealed class CpuContention
{
    private readonly long _machineBusy;
    private readonly long _ownBusy;
    private readonly long _start;

    private CpuContention(long machineBusy, long ownBusy)
    {
        _machineBusy = machineBusy;
        _ownBusy = ownBusy;
        _start = Stopwatch.GetTimestamp();
    }

    /// <summary>Starts measuring; null where /proc is not available.</summary>
    public static CpuContention? Start() => Read() is var (machine, own) ? new CpuContention(machine, own) : null;

    /// <summary>Other processes' share of all cores since <see cref="Start"/>, 0 to 1.</summary>
    public double? OthersShare()
    {
        if (Read() is not var (machine, own))
        {
            return null;
        }

        // /proc counts in clock ticks of 1/100 s (USER_HZ) on every Linux this runs on.
        double elapsedTicks = Stopwatch.GetElapsedTime(_start).TotalSeconds * 100 * Environment.ProcessorCount;
        double others = (machine - _machineBusy) - (own - _ownBusy);
        return elapsedTicks > 0 ? Math.Clamp(others / elapsedTicks, 0, 1) : null;
    }

    private static (long Machine, long Own)? Read()
    {
        try
        {
            // "cpu  user nice system idle iowait irq softirq steal ..."
            string[] cpu = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            long[] ticks = [.. cpu.Skip(1).Take(8).Select(t => long.Parse(t, CultureInfo.InvariantCulture))];
            long busy = ticks.Sum() - ticks[3] - ticks[4];
            // The command name (field 2) may hold spaces; fields after its ')' start at state (3). utime and stime are 14 and 15.
            string stat = File.ReadAllText("/proc/self/stat");
            string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            long own = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            return (busy, own);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or InvalidOperationException)
        {
            return null;
        }
    }
}
