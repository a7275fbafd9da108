using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace BlockAttention.IO;

/// <summary>
/// Opens a file for reading only if it is a regular file, without ever blocking in the open itself.
/// </summary>
/// <remarks>
/// An ordinary open of a named pipe waits until some process opens it for writing, possibly forever,
/// and a device such as <c>/dev/zero</c> reads without end. On Linux the file is therefore opened with
/// <c>O_NONBLOCK</c> (which never waits, and does not change reads from a regular file) and its type is
/// taken from the open descriptor with <c>statx</c>, so a file swapped between a check and the open
/// cannot slip through. Elsewhere (or without glibc) the type cannot be asked for; the file is opened
/// normally and the size limit still bounds what is read.
/// </remarks>
internal static class RegularFileOpener
{
    private const int ReadOnly = 0;
    private const int NonBlocking = 0x800; // O_NONBLOCK on x86-64 and arm64
    private const int CloseOnExec = 0x80000; // O_CLOEXEC on x86-64 and arm64
    private const int EmptyPath = 0x1000; // AT_EMPTY_PATH: statx the descriptor itself
    private const uint TypeMask = 0x1; // STATX_TYPE
    private const int StatxSize = 256;
    private const int StatxModeOffset = 28; // struct statx: u32 mask, u32 blksize, u64 attributes, u32 nlink, u32 uid, u32 gid, u16 mode

    private static bool s_nativeUnavailable;

    public static SafeFileHandle Open(string fullPath, string kind)
    {
        if (OperatingSystem.IsLinux() && !s_nativeUnavailable)
        {
            try
            {
                return OpenOnLinux(fullPath, kind);
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
                s_nativeUnavailable = true;
            }
        }

        if (Directory.Exists(fullPath))
        {
            throw new InputFileException($"The {kind} '{fullPath}' is a directory, not a regular file.", fullPath);
        }

        return File.OpenHandle(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    private static SafeFileHandle OpenOnLinux(string fullPath, string kind)
    {
        int fd = NativeOpen(fullPath, ReadOnly | NonBlocking | CloseOnExec);
        if (fd < 0)
        {
            throw OpenError(Marshal.GetLastPInvokeError(), fullPath, kind);
        }

        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            var buffer = new byte[StatxSize];
            if (NativeStatx(fd, "", EmptyPath, TypeMask, buffer) != 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                throw new IOException($"Cannot inspect the {kind} '{fullPath}': {Marshal.GetPInvokeErrorMessage(errno)}.");
            }

            int type = BitConverter.ToUInt16(buffer, StatxModeOffset) & 0xF000;
            if (type != 0x8000)
            {
                throw new InputFileException(
                    $"The {kind} '{fullPath}' is {Describe(type)}, not a regular file; only regular files are read.", fullPath);
            }

            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    private static string Describe(int type) => type switch
    {
        0x1000 => "a named pipe (FIFO)",
        0x2000 => "a character device",
        0x4000 => "a directory",
        0x6000 => "a block device",
        0xC000 => "a socket",
        _ => $"a file of type 0x{type:X4}",
    };

    private static Exception OpenError(int errno, string fullPath, string kind) => errno switch
    {
        // ENOENT, told apart as .NET does: a missing folder on the way, or a missing file.
        2 when !Directory.Exists(Path.GetDirectoryName(fullPath)) => new DirectoryNotFoundException($"The {kind} '{fullPath}' does not exist: its folder does not."),
        2 => new FileNotFoundException($"The {kind} '{fullPath}' does not exist.", fullPath),
        20 => new DirectoryNotFoundException($"The {kind} '{fullPath}' does not exist: part of its path is not a directory."), // ENOTDIR
        1 or 13 => new UnauthorizedAccessException($"Access to the {kind} '{fullPath}' is denied."), // EPERM, EACCES
        _ => new IOException($"Cannot open the {kind} '{fullPath}': {Marshal.GetPInvokeErrorMessage(errno)}."),
    };

    [DllImport("libc.so.6", EntryPoint = "open", SetLastError = true)]
    private static extern int NativeOpen([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc.so.6", EntryPoint = "statx", SetLastError = true)]
    private static extern int NativeStatx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte[] buffer);
}
