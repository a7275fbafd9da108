using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Cli.Benchmarking;

/// <summary>
/// Wall-clock timing of device work: CUDA kernels run asynchronously, so the device is
/// synchronised before the clock starts and before it is read; on the CPU that is a no-op.
/// </summary>
internal sealed class DeviceClock(Device device)
{
    private readonly bool _cuda = device.type == DeviceType.CUDA;

    public void Synchronize()
    {
        if (_cuda)
        {
            torch.cuda.synchronize(device);
        }
    }

    /// <summary>Milliseconds that <paramref name="work"/> took, device work included.</summary>
    public double Time(Action work)
    {
        Synchronize();
        long start = Stopwatch.GetTimestamp();
        work();
        Synchronize();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    /// <summary>Milliseconds that <paramref name="work"/> took, device work included, and its result.</summary>
    public async Task<(double Milliseconds, T Result)> TimeAsync<T>(Func<Task<T>> work)
    {
        Synchronize();
        long start = Stopwatch.GetTimestamp();
        var result = await work().ConfigureAwait(false);
        Synchronize();
        return (Stopwatch.GetElapsedTime(start).TotalMilliseconds, result);
    }
}
