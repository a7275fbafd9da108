using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Cli.Bench;

/// <summary>Describes the machine a run is on: CPU model, cores, memory, GPU, software versions.</summary>
internal static class MachineProbe
{
    public static MachineDescription Describe(Device device, string? label)
    {
        string cpu = CpuModel();
        string? gpu = null;
        long? gpuMemory = null;
        string? driver = null;
        if (device.type == DeviceType.CUDA)
        {
            int ordinal = Math.Max(0, (int)device.index);
            gpu = CudaDriver.DeviceName(ordinal);
            gpuMemory = CudaDriver.MemoryInfo(ordinal)?.Total;
            driver = CudaDriver.DriverVersion();
        }

        return new MachineDescription
        {
            Label = label ?? gpu ?? $"{cpu}, {Environment.ProcessorCount} cores",
            Cpu = cpu,
            Cores = Environment.ProcessorCount,
            TorchThreads = torch.get_num_threads(),
            MemoryBytes = ProcessMemory.MachineBytes(),
            Gpu = gpu,
            GpuMemoryBytes = gpuMemory,
            CudaDriver = driver,
            Os = RuntimeInformation.OSDescription,
            Runtime = RuntimeInformation.FrameworkDescription,
            TorchSharp = typeof(torch).Assembly.GetName().Version?.ToString() ?? "unknown",
        };
    }

    private static string CpuModel()
    {
        try
        {
            string? line = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal));
            if (line is not null && line.IndexOf(':') is int colon and >= 0)
            {
                return line[(colon + 1)..].Trim();
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return RuntimeInformation.ProcessArchitecture.ToString();
    }
}
