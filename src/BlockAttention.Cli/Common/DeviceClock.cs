using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Cli;

/// <summary>
/// Wall-clock timing of work on a device. CUDA kernels run asynchronously, so on a CUDA device the
/// clock waits for the device before it starts and before it is read; otherwise a timing would
/// measure only how fast work was queued. On the CPU the waits are no-ops.
/// </summary>
internal sealed class DeviceClock(Device device)
{
    private readonly bool _cuda = device.type == DeviceType.CUDA;

    /// <summary>Waits until the device has finished the work queued so far.</summary>
    public void Synchronize()
    {
        if (_cuda)
        {
            torch.cuda.synchronize(device);
        }
    }

    /// <summary>Starts a measurement; read it with <see cref="Running.Elapsed"/>.</summary>
    public Running Start()
    {
        Synchronize();
        return new Running(this, Stopwatch.GetTimestamp());
    }

    /// <summary>Milliseconds that <paramref name="work"/> took, device work included.</summary>
    public double Time(Action work)
    {
        var running = Start();
        work();
        return running.Elapsed.TotalMilliseconds;
    }

    /// <summary>Milliseconds that <paramref name="work"/> took, device work included, and its result.</summary>
    public async Task<(double Milliseconds, T Result)> TimeAsync<T>(Func<Task<T>> work)
    {
        var running = Start();
        var result = await work().ConfigureAwait(false);
        return (running.Elapsed.TotalMilliseconds, result);
    }

    /// <summary>A measurement in progress.</summary>
    public readonly struct Running(DeviceClock clock, long startTimestamp)
    {
        /// <summary>Time since <see cref="Start"/>, once the device has finished the work queued so far.</summary>
        public TimeSpan Elapsed
        {
            get
            {
                clock.Synchronize();
                return Stopwatch.GetElapsedTime(startTimestamp);
            }
        }
    }
}
