using System.Runtime.InteropServices;
using System.Text;

namespace BlockAttention.Cli.Bench;

/// <summary>
/// GPU name and memory from the CUDA driver API (<c>libcuda.so.1</c>, present wherever a GPU is),
/// because TorchSharp exposes neither a device name nor the caching allocator's statistics
/// (no <c>max_memory_allocated</c>, no <c>empty_cache</c>).
/// </summary>
/// <remarks>
/// Memory is the device's used memory (total minus free) in PyTorch's primary context. It counts
/// what the caching allocator has reserved, the CUDA context itself and any other process on the
/// card. The allocator keeps what it reserved, so after a measurement this is the high-water mark
/// of the process so far, which is what a capacity planner needs; it is not allocated bytes.
/// </remarks>
internal static class CudaDriver
{
    private const string Library = "libcuda.so.1";
    private const int Success = 0;

    /// <summary>The device's marketing name, e.g. "NVIDIA H200", or null without a driver.</summary>
    public static string? DeviceName(int ordinal)
    {
        try
        {
            if (cuInit(0) != Success || cuDeviceGet(out int device, ordinal) != Success)
            {
                return null;
            }

            var name = new byte[256];
            if (cuDeviceGetName(name, name.Length, device) != Success)
            {
                return null;
            }

            int end = Array.IndexOf(name, (byte)0);
            return Encoding.ASCII.GetString(name, 0, end < 0 ? name.Length : end);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The driver version as "13.0", or null.</summary>
    public static string? DriverVersion()
    {
        try
        {
            return cuDriverGetVersion(out int version) == Success ? $"{version / 1000}.{version % 1000 / 10}" : null;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>Used and total device memory in bytes, or null without a driver.</summary>
    public static (long Used, long Total)? MemoryInfo(int ordinal)
    {
        try
        {
            if (cuInit(0) != Success || cuDeviceGet(out int device, ordinal) != Success
                || cuDevicePrimaryCtxRetain(out nint context, device) != Success)
            {
                return null;
            }

            try
            {
                // The calling thread may have no current context (async continuations hop threads):
                // make PyTorch's primary context current just for the query.
                if (cuCtxPushCurrent(context) != Success)
                {
                    return null;
                }

                int status = cuMemGetInfo(out nuint free, out nuint total);
                cuCtxPopCurrent(out _);
                return status == Success ? ((long)(total - free), (long)total) : null;
            }
            finally
            {
                cuDevicePrimaryCtxRelease(device);
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    [DllImport(Library)]
    private static extern int cuInit(uint flags);

    [DllImport(Library)]
    private static extern int cuDriverGetVersion(out int version);

    [DllImport(Library)]
    private static extern int cuDeviceGet(out int device, int ordinal);

    [DllImport(Library)]
    private static extern int cuDeviceGetName(byte[] name, int length, int device);

    [DllImport(Library)]
    private static extern int cuDevicePrimaryCtxRetain(out nint context, int device);

    [DllImport(Library, EntryPoint = "cuDevicePrimaryCtxRelease_v2")]
    private static extern int cuDevicePrimaryCtxRelease(int device);

    [DllImport(Library, EntryPoint = "cuCtxPushCurrent_v2")]
    private static extern int cuCtxPushCurrent(nint context);

    [DllImport(Library, EntryPoint = "cuCtxPopCurrent_v2")]
    private static extern int cuCtxPopCurrent(out nint context);

    [DllImport(Library, EntryPoint = "cuMemGetInfo_v2")]
    private static extern int cuMemGetInfo(out nuint free, out nuint total);
}
