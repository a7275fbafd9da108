using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace BlockAttention.Attention.Cuda;

/// <summary>
/// BlockAttention's own CUDA kernels: CUDA C sources embedded in this assembly, compiled at first
/// use with NVRTC for the device's architecture and launched through the driver API on the legacy
/// default stream, which is the stream libtorch's operations run on, so our kernels and
/// TorchSharp's operations are ordered without any synchronisation.
/// </summary>
/// <remarks>
/// Where there is no CUDA device, no driver, no NVRTC, or the kernels do not compile, callers keep
/// the stock-operation path; the choice is reported once through <see cref="Log"/>. Setting the
/// environment variable <c>BLOCKATTENTION_CUDA_KERNELS=0</c> turns the kernels off.
/// </remarks>
internal sealed class CudaKernels
{
    private static readonly Lock s_lock = new();
    private static readonly Dictionary<int, CudaKernels?> s_devices = [];
    private static readonly HashSet<string> s_logged = [];
    private static Nvrtc? s_nvrtc;
    private static string? s_nvrtcTried;

    private readonly Dictionary<(int Element, int HeadDim, int Rows), KernelFunctions> _functions = [];
    private readonly Dictionary<(int Element, int HeadDim), DecodeFunctions?> _decode = [];
    private readonly Lock _functionLock = new();
    private readonly nint _context;
    private readonly int _ordinal;

    private CudaKernels(int ordinal, nint context, int multiprocessors, int major, int minor, Nvrtc nvrtc)
    {
        _ordinal = ordinal;
        _context = context;
        Multiprocessors = multiprocessors;
        ComputeCapability = major * 10 + minor;
        Compiler = nvrtc;
    }

    /// <summary>Where messages about the kernels go (which path was chosen, and why); null drops them.</summary>
    public static Action<string>? Log { get; set; }

    /// <summary>The last choice made, for reports: e.g. "CUDA kernels on (NVRTC ..., sm_90)" or why not.</summary>
    public static string Status { get; private set; } = "CUDA kernels not requested";

    /// <summary>Streaming multiprocessors on the device.</summary>
    public int Multiprocessors { get; }

    /// <summary>Compute capability as major*10+minor (90 for Hopper).</summary>
    public int ComputeCapability { get; }

    private Nvrtc Compiler { get; }

    /// <summary>True when the kernels exist for this element type and head size.</summary>
    public static bool Supports(ScalarType dtype, int headDim) =>
        dtype is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16 && headDim % 4 == 0 && headDim is >= 8 and <= 128;

    /// <summary>True when the tensor-core kernel exists for this element type and head size.</summary>
    public static bool SupportsTensorCores(ScalarType dtype, int headDim) =>
        dtype is ScalarType.BFloat16 or ScalarType.Float16 && headDim % 16 == 0 && headDim <= 128;

    /// <summary>True when the decode kernel (DecodeAttention.cu) exists for this element type and head size.</summary>
    public static bool SupportsDecode(ScalarType dtype, int headDim)
    {
        if (!Supports(dtype, headDim))
        {
            return false;
        }

        int vector = dtype == ScalarType.Float32 ? 4 : 8;
        return headDim % vector == 0 && (headDim / vector) is 1 or 2 or 4 or 8 or 16 or 32;
    }

    /// <summary>
    /// The decode kernels (DecodeAttention.cu, a module of their own) for this element type and
    /// head size, compiled on first use; null where they do not exist or do not compile (reported
    /// once; the split kernels of SegmentAttention.cu are then used).
    /// </summary>
    public DecodeFunctions? Decode(ScalarType dtype, int headDim)
    {
        if (!SupportsDecode(dtype, headDim))
        {
            return null;
        }

        int element = ElementId(dtype);
        lock (_functionLock)
        {
            if (_decode.TryGetValue((element, headDim), out var found))
            {
                return found;
            }

            DecodeFunctions? functions = null;
            try
            {
                EnsureContext();
                nint module = LoadModule($"#define ELEM_ID {element}\n#define HEAD_DIM {headDim}\n" + DecodeSource.Value, "decode_attention.cu", "cuModuleLoadData(decode)");

                nint Get(string name)
                {
                    CudaDriverApi.Check(CudaDriverApi.cuModuleGetFunction(out nint function, module, name), $"cuModuleGetFunction({name})");
                    return function;
                }

                functions = new DecodeFunctions(Get("decode_split_r1"), Get("decode_split_r2"), Get("decode_split_r4"), Get("decode_split_r8"), Get("decode_combine"))
                {
                    Deep1 = Get("decode_deep_r1"),
                    Deep2 = Get("decode_deep_r2"),
                    Deep4 = Get("decode_deep_r4"),
                    Deep8 = Get("decode_deep_r8"),
                };
            }
            catch (InvalidOperationException e)
            {
                Report($"CUDA decode kernel unavailable for {dtype}/{headDim}: {e.Message}; the split kernel is used for decode steps");
            }

            _decode[(element, headDim)] = functions;
            return functions;
        }
    }

    /// <summary>
    /// The kernels for <paramref name="device"/>, compiled for <paramref name="dtype"/> and
    /// <paramref name="headDim"/>, or null where they cannot run (logged once per reason).
    /// </summary>
    public static CudaKernels? TryGet(Device device, ScalarType dtype, int headDim)
    {
        if (device.type != DeviceType.CUDA)
        {
            return null;
        }

        if (Environment.GetEnvironmentVariable("BLOCKATTENTION_CUDA_KERNELS") is "0" or "off" or "false")
        {
            Report("CUDA kernels off (BLOCKATTENTION_CUDA_KERNELS); stock operations are used");
            return null;
        }

        if (!Supports(dtype, headDim))
        {
            Report($"CUDA kernels have no variant for {dtype} with head dimension {headDim}; stock operations are used");
            return null;
        }

        int ordinal = Math.Max(0, (int)device.index);
        CudaKernels? kernels;
        lock (s_lock)
        {
            if (!s_devices.TryGetValue(ordinal, out kernels))
            {
                kernels = Create(ordinal);
                s_devices[ordinal] = kernels;
            }
        }

        if (kernels is null)
        {
            return null;
        }

        try
        {
            kernels.Functions(dtype, headDim, 64);
            if (headDim >= 16)
            {
                kernels.Functions(dtype, headDim, 16);
            }
        }
        catch (InvalidOperationException e)
        {
            Report($"CUDA kernels could not be built for {dtype}/{headDim}: {e.Message}; stock operations are used");
            return null;
        }

        Report($"CUDA kernels on: NVRTC from {s_nvrtc!.Path}, compute_{kernels.ComputeCapability}, {kernels.Multiprocessors} SMs");
        return kernels;
    }

    /// <summary>The kernels of one variant, compiled on first use.</summary>
    public KernelFunctions Functions(ScalarType dtype, int headDim, int rows)
    {
        int element = ElementId(dtype);
        lock (_functionLock)
        {
            if (_functions.TryGetValue((element, headDim, rows), out var found))
            {
                return found;
            }

            EnsureContext();
            nint module = LoadModule($"#define ELEM_ID {element}\n#define HEAD_DIM {headDim}\n#define ROWS {rows}\n" + Source.Value, "segment_attention.cu", "cuModuleLoadData");

            CudaDriverApi.Check(CudaDriverApi.cuModuleGetFunction(out nint split, module, "segment_attention_split"), "cuModuleGetFunction");
            string combineName = Environment.GetEnvironmentVariable("BLOCKATTENTION_CUDA_COMBINE") == "serial" ? "segment_attention_combine_serial" : "segment_attention_combine";
            CudaDriverApi.Check(CudaDriverApi.cuModuleGetFunction(out nint combine, module, combineName), "cuModuleGetFunction");
            CudaDriverApi.Check(CudaDriverApi.cuFuncSetAttribute(split, CudaDriverApi.FunctionAttributeMaxDynamicSharedSizeBytes, SegmentAttention.SharedBytes(headDim, rows)), "cuFuncSetAttribute");
            nint splitMma = 0, sharedMma = 0;
            if (SupportsTensorCores(dtype, headDim))
            {
                CudaDriverApi.Check(CudaDriverApi.cuModuleGetFunction(out splitMma, module, "segment_attention_split_mma"), "cuModuleGetFunction");
                CudaDriverApi.Check(CudaDriverApi.cuFuncSetAttribute(splitMma, CudaDriverApi.FunctionAttributeMaxDynamicSharedSizeBytes, SegmentAttention.MmaSharedBytes(headDim)), "cuFuncSetAttribute");
                CudaDriverApi.Check(CudaDriverApi.cuModuleGetFunction(out sharedMma, module, "segment_attention_shared_mma"), "cuModuleGetFunction");
                CudaDriverApi.Check(CudaDriverApi.cuFuncSetAttribute(sharedMma, CudaDriverApi.FunctionAttributeMaxDynamicSharedSizeBytes, SegmentAttention.MmaSharedBytes(headDim)), "cuFuncSetAttribute");
            }

            CudaDriverApi.Check(CudaDriverApi.cuModuleGetFunction(out nint rmsNorm, module, "rms_norm"), "cuModuleGetFunction");
            CudaDriverApi.Check(CudaDriverApi.cuModuleGetFunction(out nint rotateAppend, module, "rotate_append"), "cuModuleGetFunction");
            CudaDriverApi.Check(CudaDriverApi.cuModuleGetFunction(out nint rotateAppendRows, module, "rotate_append_rows"), "cuModuleGetFunction");
            CudaDriverApi.Check(CudaDriverApi.cuModuleGetFunction(out nint siluMul, module, "silu_mul"), "cuModuleGetFunction");
            var functions = new KernelFunctions(split, splitMma, combine, rmsNorm, rotateAppend, siluMul) { SharedMma = sharedMma, RotateAppendRows = rotateAppendRows };
            _functions[(element, headDim, rows)] = functions;
            return functions;
        }
    }

    private static int ElementId(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => 0,
        ScalarType.BFloat16 => 1,
        ScalarType.Float16 => 2,
        _ => throw new ArgumentException($"no kernel for {dtype}", nameof(dtype)),
    };

    /// <summary>
    /// Makes the device's primary context (the one libtorch uses) current on this thread. After
    /// any libtorch CUDA operation on the thread it already is; a thread that has run none (an
    /// async continuation, say) gets it here.
    /// </summary>
    public void EnsureContext()
    {
        CudaDriverApi.Check(CudaDriverApi.cuCtxGetCurrent(out nint current), "cuCtxGetCurrent");
        if (current != _context)
        {
            CudaDriverApi.Check(CudaDriverApi.cuCtxSetCurrent(_context), "cuCtxSetCurrent");
        }
    }

    /// <summary>
    /// A work table on the device: copied from pinned memory without waiting for the device (the
    /// caching host allocator keeps the pinned block until the copy has run).
    /// </summary>
    public static Tensor ToDevice(int[] table, Device device)
    {
        using var host = tensor(table, ScalarType.Int32);
        using var pinned = host.pin_memory();
        return pinned.to(device, non_blocking: true);
    }

    /// <inheritdoc cref="ToDevice(int[], Device)"/>
    public static Tensor ToDevice(long[] table, Device device)
    {
        using var host = tensor(table, ScalarType.Int64);
        using var pinned = host.pin_memory();
        return pinned.to(device, non_blocking: true);
    }

    /// <summary>Compiles <paramref name="source"/> with NVRTC for this device and loads it as a module.</summary>
    private nint LoadModule(string source, string name, string what)
    {
        byte[] ptx = Compiler.CompileToPtx(source, name, [$"--gpu-architecture=compute_{ComputeCapability}", "-default-device", "--std=c++17"]);
        nint module;
        unsafe
        {
            fixed (byte* image = ptx)
            {
                CudaDriverApi.Check(CudaDriverApi.cuModuleLoadData(out module, image), what);
            }
        }

        return module;
    }

    /// <summary>The kernels of one compiled variant: CUDA-core split, tensor-core split (0 for float32), combine.</summary>
    internal readonly record struct KernelFunctions(nint Split, nint SplitMma, nint Combine, nint RmsNorm, nint RotateAppend, nint SiluMul)
    {
        /// <summary>The tensor-core kernel for decode steps of many sequences over shared segments (0 for float32).</summary>
        public nint SharedMma { get; init; }

        /// <summary>rotate_append for the rows of many requests in one launch.</summary>
        public nint RotateAppendRows { get; init; }
    }

    /// <summary>The decode kernels of one compiled variant: split kernels for at most 1, 2, 4 and 8 folded query rows, and their combine.</summary>
    internal readonly record struct DecodeFunctions(nint Rows1, nint Rows2, nint Rows4, nint Rows8, nint Combine)
    {
        /// <summary>The most folded query rows (query heads per KV head times query rows) the decode kernel takes.</summary>
        public const int MaxRows = 8;

        /// <summary>The deep variant (twice the keys in flight, the next tile's descriptor prefetched), per row count.</summary>
        public nint Deep1 { get; init; }

        /// <inheritdoc cref="Deep1"/>
        public nint Deep2 { get; init; }

        /// <inheritdoc cref="Deep1"/>
        public nint Deep4 { get; init; }

        /// <inheritdoc cref="Deep1"/>
        public nint Deep8 { get; init; }

        /// <summary>The split kernel for <paramref name="rows"/> folded rows (at most <see cref="MaxRows"/>).</summary>
        public nint Split(int rows, bool deep = false) => rows switch
        {
            <= 1 => deep ? Deep1 : Rows1,
            <= 2 => deep ? Deep2 : Rows2,
            <= 4 => deep ? Deep4 : Rows4,
            <= MaxRows => deep ? Deep8 : Rows8,
            _ => throw new ArgumentOutOfRangeException(nameof(rows), rows, $"the decode kernel takes at most {MaxRows} folded rows"),
        };
    }

    private static CudaKernels? Create(int ordinal)
    {
        try
        {
            CudaDriverApi.Check(CudaDriverApi.cuInit(0), "cuInit");
            CudaDriverApi.Check(CudaDriverApi.cuDeviceGet(out int device, ordinal), "cuDeviceGet");
            CudaDriverApi.Check(CudaDriverApi.cuDeviceGetAttribute(out int sms, CudaDriverApi.AttributeMultiprocessorCount, device), "cuDeviceGetAttribute");
            CudaDriverApi.Check(CudaDriverApi.cuDeviceGetAttribute(out int major, CudaDriverApi.AttributeComputeCapabilityMajor, device), "cuDeviceGetAttribute");
            CudaDriverApi.Check(CudaDriverApi.cuDeviceGetAttribute(out int minor, CudaDriverApi.AttributeComputeCapabilityMinor, device), "cuDeviceGetAttribute");
            CudaDriverApi.Check(CudaDriverApi.cuDevicePrimaryCtxRetain(out nint context, device), "cuDevicePrimaryCtxRetain");
            if (s_nvrtc is null)
            {
                s_nvrtc = Nvrtc.TryLoad(out string tried);
                s_nvrtcTried = tried;
            }

            if (s_nvrtc is null)
            {
                Report($"CUDA kernels off: NVRTC not found (tried {s_nvrtcTried}); stock operations are used");
                return null;
            }

            return new CudaKernels(ordinal, context, sms, major, minor, s_nvrtc);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or InvalidOperationException)
        {
            Report($"CUDA kernels off: {e.Message}; stock operations are used");
            return null;
        }
    }

    private static void Report(string message)
    {
        Status = message;
        lock (s_lock)
        {
            if (!s_logged.Add(message))
            {
                return;
            }
        }

        Log?.Invoke(message);
    }

    private static readonly Lazy<string> Source = new(() =>
    {
        var assembly = typeof(CudaKernels).Assembly;
        using var stream = assembly.GetManifestResourceStream("BlockAttention.Attention.Cuda.SegmentAttention.cu")
            ?? throw new InvalidOperationException("the embedded kernel source SegmentAttention.cu is missing");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    private static readonly Lazy<string> DecodeSource = new(() =>
    {
        var assembly = typeof(CudaKernels).Assembly;
        using var stream = assembly.GetManifestResourceStream("BlockAttention.Attention.Cuda.DecodeAttention.cu")
            ?? throw new InvalidOperationException("the embedded kernel source DecodeAttention.cu is missing");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    /// <summary>The device address of a tensor's first element (<c>THSTensor_data</c> of TorchSharp's bridge).</summary>
    public static nint DataPointer(Tensor tensor) => THSTensor_data(tensor.Handle);

    [DllImport("LibTorchSharp")]
    private static extern nint THSTensor_data(nint handle);
}
