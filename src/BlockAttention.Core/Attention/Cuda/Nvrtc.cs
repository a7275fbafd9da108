using System.Runtime.InteropServices;
using System.Text;

namespace BlockAttention.Attention.Cuda;

/// <summary>
/// NVRTC, CUDA's run-time compiler, loaded dynamically: it ships with CUDA toolkits and with CUDA
/// builds of PyTorch and libtorch, under names that change with the CUDA major version.
/// </summary>
internal sealed unsafe class Nvrtc
{
    private readonly delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int> _create;
    private readonly delegate* unmanaged<nint, int, byte**, int> _compile;
    private readonly delegate* unmanaged<nint, nuint*, int> _ptxSize;
    private readonly delegate* unmanaged<nint, byte*, int> _ptx;
    private readonly delegate* unmanaged<nint, nuint*, int> _logSize;
    private readonly delegate* unmanaged<nint, byte*, int> _log;
    private readonly delegate* unmanaged<nint*, int> _destroy;

    private Nvrtc(nint library, string path)
    {
        Path = path;
        _create = (delegate* unmanaged<nint*, byte*, byte*, int, byte**, byte**, int>)NativeLibrary.GetExport(library, "nvrtcCreateProgram");
        _compile = (delegate* unmanaged<nint, int, byte**, int>)NativeLibrary.GetExport(library, "nvrtcCompileProgram");
        _ptxSize = (delegate* unmanaged<nint, nuint*, int>)NativeLibrary.GetExport(library, "nvrtcGetPTXSize");
        _ptx = (delegate* unmanaged<nint, byte*, int>)NativeLibrary.GetExport(library, "nvrtcGetPTX");
        _logSize = (delegate* unmanaged<nint, nuint*, int>)NativeLibrary.GetExport(library, "nvrtcGetProgramLogSize");
        _log = (delegate* unmanaged<nint, byte*, int>)NativeLibrary.GetExport(library, "nvrtcGetProgramLog");
        _destroy = (delegate* unmanaged<nint*, int>)NativeLibrary.GetExport(library, "nvrtcDestroyProgram");
    }

    /// <summary>Where the library was loaded from (or the name the loader resolved).</summary>
    public string Path { get; }

    /// <summary>Finds and loads NVRTC, or returns null with the places tried in <paramref name="tried"/>.</summary>
    public static Nvrtc? TryLoad(out string tried)
    {
        var candidates = Candidates().Distinct().ToList();
        tried = string.Join(", ", candidates);
        foreach (string candidate in candidates)
        {
            if (NativeLibrary.TryLoad(candidate, out nint handle))
            {
                try
                {
                    return new Nvrtc(handle, candidate);
                }
                catch (EntryPointNotFoundException)
                {
                }
            }
        }

        return null;
    }

    /// <summary>Compiles CUDA C source to PTX; throws with the compiler's log on failure.</summary>
    public byte[] CompileToPtx(string source, string name, IReadOnlyList<string> options)
    {
        byte[] sourceBytes = Encoding.UTF8.GetBytes(source + "\0");
        byte[] nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        var optionBytes = options.Select(o => Encoding.UTF8.GetBytes(o + "\0")).ToArray();
        var handles = optionBytes.Select(o => GCHandle.Alloc(o, GCHandleType.Pinned)).ToArray();
        nint program = 0;
        try
        {
            var optionPointers = stackalloc byte*[Math.Max(1, options.Count)];
            for (int i = 0; i < options.Count; i++)
            {
                optionPointers[i] = (byte*)handles[i].AddrOfPinnedObject();
            }

            fixed (byte* src = sourceBytes)
            fixed (byte* nm = nameBytes)
            {
                Check(_create(&program, src, nm, 0, null, null), "nvrtcCreateProgram");
            }

            int status = _compile(program, options.Count, optionPointers);
            if (status != 0)
            {
                throw new InvalidOperationException($"NVRTC could not compile {name} (error {status}): {Log(program)}");
            }

            nuint size;
            Check(_ptxSize(program, &size), "nvrtcGetPTXSize");
            var ptx = new byte[(int)size];
            fixed (byte* p = ptx)
            {
                Check(_ptx(program, p), "nvrtcGetPTX");
            }

            return ptx;
        }
        finally
        {
            if (program != 0)
            {
                _destroy(&program);
            }

            foreach (var handle in handles)
            {
                handle.Free();
            }
        }
    }

    private string Log(nint program)
    {
        nuint size;
        if (_logSize(program, &size) != 0 || size == 0)
        {
            return "(no log)";
        }

        var log = new byte[(int)size];
        fixed (byte* p = log)
        {
            _log(program, p);
        }

        return Encoding.UTF8.GetString(log).TrimEnd('\0');
    }

    private static void Check(int status, string what)
    {
        if (status != 0)
        {
            throw new InvalidOperationException($"NVRTC: {what} failed with error {status}");
        }
    }

    /// <summary>An explicit path first, then the loader's search path, then beside libtorch, then CUDA toolkits.</summary>
    private static IEnumerable<string> Candidates()
    {
        string[] names = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];
        if (Environment.GetEnvironmentVariable("BLOCKATTENTION_NVRTC") is { Length: > 0 } explicitPath)
        {
            yield return explicitPath;
        }

        foreach (string name in names)
        {
            yield return name;
        }

        var folders = new List<string>();
        if (LoadedLibraryFolder("libtorch_cuda.so") is { } torchLib)
        {
            folders.Add(torchLib);
            // PyTorch wheels keep CUDA's libraries in site-packages/nvidia/...
            string sitePackages = System.IO.Path.GetFullPath(System.IO.Path.Combine(torchLib, "..", ".."));
            string nvidia = System.IO.Path.Combine(sitePackages, "nvidia");
            if (Directory.Exists(nvidia))
            {
                folders.AddRange(Directory.EnumerateDirectories(nvidia).Select(d => System.IO.Path.Combine(d, "lib")));
            }
        }

        foreach (string variable in new[] { "CUDA_HOME", "CUDA_PATH" })
        {
            if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } home)
            {
                folders.Add(System.IO.Path.Combine(home, "lib64"));
                folders.Add(System.IO.Path.Combine(home, "targets", "x86_64-linux", "lib"));
            }
        }

        folders.Add("/usr/local/cuda/lib64");
        folders.Add("/usr/local/cuda/targets/x86_64-linux/lib");
        if (Directory.Exists("/usr/local"))
        {
            folders.AddRange(Directory.EnumerateDirectories("/usr/local", "cuda-*").OrderDescending()
                .Select(d => System.IO.Path.Combine(d, "targets", "x86_64-linux", "lib")));
        }

        foreach (string folder in folders.Where(Directory.Exists))
        {
            foreach (string name in names)
            {
                string path = System.IO.Path.Combine(folder, name);
                if (File.Exists(path))
                {
                    yield return path;
                }
            }
        }
    }

    /// <summary>The folder of a shared library already mapped into this process (from /proc/self/maps), or null.</summary>
    private static string? LoadedLibraryFolder(string fileName)
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash >= 0 && line.EndsWith("/" + fileName, StringComparison.Ordinal))
                {
                    return System.IO.Path.GetDirectoryName(line[slash..]);
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null;
    }
}
