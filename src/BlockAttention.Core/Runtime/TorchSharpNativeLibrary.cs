using System.Reflection;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using System.Security.Cryptography;

namespace BlockAttention.Runtime;

/// <summary>
/// Makes TorchSharp's native bridge (<c>libLibTorchSharp.so</c>) load on Linux systems whose
/// libstdc++ predates GCC 13 (Debian 12, Ubuntu 22.04), with no manual step.
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp 0.107's bridge was built with GCC 13 and so requires the version
/// <c>GLIBCXX_3.4.32</c> from libstdc++, for one symbol, <c>std::ios_base_library_init()</c>,
/// which GCC 13's <c>&lt;iostream&gt;</c> references but never calls. Older systems lack that
/// version and the dynamic linker refuses the whole library.
/// </para>
/// <para>
/// The fix runs only after the normal load has failed and only when the host's libstdc++ really
/// lacks that version: it writes a copy of the bridge whose requirement of that version is marked
/// weak (<c>VER_FLG_WEAK</c>), into a per-user cache folder keyed by the original's hash, loads the
/// bridge's libtorch dependencies from the original's folder, and hands the copy to the runtime.
/// Files in the NuGet cache and the application folder are never modified. On hosts whose
/// libstdc++ has the version, nothing is done at all.
/// </para>
/// <para>
/// BlockAttention registers this automatically when its assemblies are first used. Call
/// <see cref="EnsureRegistered"/> yourself only if your code calls TorchSharp before any
/// BlockAttention type.
/// </para>
/// </remarks>
public static class TorchSharpNativeLibrary
{
    private const string BridgeName = "LibTorchSharp";
    private const string BridgeFileName = "libLibTorchSharp.so";
    private const string MissingVersion = "GLIBCXX_3.4.32";
    private const string VersionedSymbol = "_ZSt21ios_base_library_initv"; // std::ios_base_library_init()

    private static readonly Lock s_lock = new();
    private static bool s_registered;
    private static IntPtr s_patchedHandle;

    /// <summary>The path of the patched copy in use, or null when none was needed (or it is not loaded yet).</summary>
    public static string? PatchedCopyPath { get; private set; }

    /// <summary>
    /// Registers the fallback that loads a patched copy of TorchSharp's bridge when the normal load
    /// fails for the reason above. Idempotent and cheap; does nothing outside Linux x64.
    /// </summary>
    public static void EnsureRegistered()
    {
        lock (s_lock)
        {
            if (s_registered)
            {
                return;
            }

            s_registered = true;
            if (OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture == Architecture.X64)
            {
                AssemblyLoadContext.Default.ResolvingUnmanagedDll += OnResolvingUnmanagedDll;
            }
        }
    }

    /// <summary>True when the process's libstdc++ provides <c>GLIBCXX_3.4.32</c>, so no patch is needed.</summary>
    public static bool HostLibStdCxxHasRequiredVersion()
    {
        if (!NativeLibrary.TryLoad("libstdc++.so.6", out IntPtr libstdcxx))
        {
            return false;
        }

        return DynamicLinker.FindVersionedSymbol(libstdcxx, VersionedSymbol, MissingVersion) != IntPtr.Zero;
    }

    private static IntPtr OnResolvingUnmanagedDll(Assembly assembly, string name)
    {
        if (name != BridgeName && name != BridgeFileName)
        {
            return IntPtr.Zero;
        }

        lock (s_lock)
        {
            if (s_patchedHandle != IntPtr.Zero)
            {
                return s_patchedHandle;
            }

            if (FindOriginal(assembly) is not { } original ||
                PreparePatchedCopy(original, HostLibStdCxxHasRequiredVersion, CacheRoot()) is not { } patched)
            {
                return IntPtr.Zero; // the failure has another cause; let TorchSharp report it
            }

            LoadDependenciesBesideOriginal(original);
            s_patchedHandle = NativeLibrary.Load(patched);
            PatchedCopyPath = patched;
            return s_patchedHandle;
        }
    }

    /// <summary>Looks where the host looks for native assets: the deps.json folders, then the app and assembly folders.</summary>
    private static string? FindOriginal(Assembly assembly)
    {
        var folders = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirectories)
        {
            folders.AddRange(searchDirectories.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        }

        folders.Add(AppContext.BaseDirectory);
        if (Path.GetDirectoryName(assembly.Location) is { Length: > 0 } assemblyFolder)
        {
            folders.Add(assemblyFolder);
            folders.Add(Path.Combine(assemblyFolder, "runtimes", "linux-x64", "native"));
        }

        return folders.Select(folder => Path.Combine(folder, BridgeFileName)).FirstOrDefault(File.Exists);
    }

    /// <summary>
    /// The whole patch decision and its one write, apart from the loader hook so that tests can
    /// take both branches on any host: returns null, touching no file, when
    /// <paramref name="hostHasRequiredVersion"/> says the host's libstdc++ has the version;
    /// otherwise returns the path of the patched copy of <paramref name="original"/> under
    /// <paramref name="cacheRoot"/>, writing it first if it is not there yet.
    /// <paramref name="original"/> is only read.
    /// </summary>
    internal static string? PreparePatchedCopy(string original, Func<bool> hostHasRequiredVersion, string cacheRoot)
    {
        if (hostHasRequiredVersion())
        {
            return null;
        }

        byte[] bytes = File.ReadAllBytes(original);
        string hash = Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];
        string folder = Path.Combine(cacheRoot, hash);
        string target = Path.Combine(folder, BridgeFileName);
        if (File.Exists(target))
        {
            return target;
        }

        if (!ElfVersionNeeds.MarkWeak(bytes, "libstdc++.so.6", MissingVersion))
        {
            throw new DllNotFoundException(
                $"{original} failed to load, but it does not require {MissingVersion}; BlockAttention's loader fix does not apply. " +
                "Check that libtorch's libraries are beside it or on LD_LIBRARY_PATH.");
        }

        Directory.CreateDirectory(folder);
        // Write then rename, so a concurrent process never loads a half-written file.
        string temporary = Path.Combine(folder, $"{BridgeFileName}.{Environment.ProcessId}.tmp");
        File.WriteAllBytes(temporary, bytes);
        File.Move(temporary, target, overwrite: true);
        return target;
    }

    /// <summary>
    /// The bridge finds libtorch through its RUNPATH <c>$ORIGIN</c>, which points at the cache
    /// folder for the copy; loading the dependencies first from the original's folder lets the
    /// dynamic linker satisfy them by their sonames. Ones not there (a CUDA libtorch on
    /// LD_LIBRARY_PATH) are left to the linker's usual search.
    /// </summary>
    private static void LoadDependenciesBesideOriginal(string original)
    {
        string folder = Path.GetDirectoryName(original)!;
        foreach (string dependency in new[] { "libc10.so", "libtorch_cpu.so", "libtorch.so" })
        {
            string path = Path.Combine(folder, dependency);
            if (File.Exists(path))
            {
                NativeLibrary.Load(path);
            }
        }
    }

    private static string CacheRoot()
    {
        string? configured = Environment.GetEnvironmentVariable("BLOCKATTENTION_NATIVE_CACHE");
        if (!string.IsNullOrEmpty(configured))
        {
            return configured;
        }

        string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string root = !string.IsNullOrEmpty(xdg) ? xdg
            : !string.IsNullOrEmpty(home) ? Path.Combine(home, ".cache")
            : Path.GetTempPath();
        return Path.Combine(root, "blockattention", "torchsharp-native");
    }

    private static class DynamicLinker
    {
        // glibc 2.34+ exports dlvsym from libc; older releases only from libdl.
        public static IntPtr FindVersionedSymbol(IntPtr handle, string symbol, string version)
        {
            try
            {
                return DlvsymLibc(handle, symbol, version);
            }
            catch (EntryPointNotFoundException)
            {
                return DlvsymLibdl(handle, symbol, version);
            }
            catch (DllNotFoundException)
            {
                return DlvsymLibdl(handle, symbol, version);
            }
        }

        [DllImport("libc.so.6", EntryPoint = "dlvsym")]
        private static extern IntPtr DlvsymLibc(IntPtr handle, [MarshalAs(UnmanagedType.LPStr)] string symbol, [MarshalAs(UnmanagedType.LPStr)] string version);

        [DllImport("libdl.so.2", EntryPoint = "dlvsym")]
        private static extern IntPtr DlvsymLibdl(IntPtr handle, [MarshalAs(UnmanagedType.LPStr)] string symbol, [MarshalAs(UnmanagedType.LPStr)] string version);
    }
}
