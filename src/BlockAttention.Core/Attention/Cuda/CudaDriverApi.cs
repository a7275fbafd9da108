using System.Runtime.InteropServices;

namespace BlockAttention.Attention.Cuda;

/// <summary>The few CUDA driver API entry points the kernels need (<c>libcuda.so.1</c>, installed with the driver).</summary>
internal static unsafe class CudaDriverApi
{
    private const string Library = "libcuda.so.1";

    public const int Success = 0;
    public const int AttributeMultiprocessorCount = 16;
    public const int AttributeComputeCapabilityMajor = 75;
    public const int AttributeComputeCapabilityMinor = 76;
    public const int FunctionAttributeMaxDynamicSharedSizeBytes = 8;

    [DllImport(Library)]
    public static extern int cuInit(uint flags);

    [DllImport(Library)]
    public static extern int cuDeviceGet(out int device, int ordinal);

    [DllImport(Library)]
    public static extern int cuDeviceGetAttribute(out int value, int attribute, int device);

    [DllImport(Library)]
    public static extern int cuDevicePrimaryCtxRetain(out nint context, int device);

    [DllImport(Library, EntryPoint = "cuCtxGetCurrent")]
    public static extern int cuCtxGetCurrent(out nint context);

    [DllImport(Library, EntryPoint = "cuCtxSetCurrent")]
    public static extern int cuCtxSetCurrent(nint context);

    [DllImport(Library)]
    public static extern int cuModuleLoadData(out nint module, byte* image);

    [DllImport(Library)]
    public static extern int cuModuleGetFunction(out nint function, nint module, [MarshalAs(UnmanagedType.LPStr)] string name);

    [DllImport(Library)]
    public static extern int cuFuncSetAttribute(nint function, int attribute, int value);

    [DllImport(Library)]
    public static extern int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedMemoryBytes, nint stream, void** parameters, void** extra);

    [DllImport(Library)]
    public static extern int cuGetErrorString(int error, out nint text);

    /// <summary>Throws with the driver's description when <paramref name="status"/> is not success.</summary>
    public static void Check(int status, string what)
    {
        if (status == Success)
        {
            return;
        }

        string text = "unknown error";
        try
        {
            if (cuGetErrorString(status, out nint message) == Success && message != 0)
            {
                text = Marshal.PtrToStringAnsi(message) ?? text;
            }
        }
        catch (EntryPointNotFoundException)
        {
        }

        throw new InvalidOperationException($"CUDA driver: {what} failed with error {status} ({text})");
    }
}
