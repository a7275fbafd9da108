using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Cli;

/// <summary>
/// A stopwatch for work on a device. CUDA kernels run asynchronously, so on a CUDA device the
/// clock waits for the device to finish before it reads the time; otherwise a timing would
/// measure only how fast work was queued.
/// </summary>
internal sealed class DeviceClock
{
    private readonly Device _device;
    private readonly Stopwatch _watch;

    private DeviceClock(Device device)
    {
        _device = device;
        Synchronize();
        _watch = Stopwatch.StartNew();
    }

    public static DeviceClock Start(Device device) => new(device);

    public TimeSpan Elapsed
    {
        get
        {
            Synchronize();
            return _watch.Elapsed;
        }
    }

    private void Synchronize()
    {
        if (_device.type == DeviceType.CUDA)
        {
            torch.cuda.synchronize(_device);
        }
    }
}
