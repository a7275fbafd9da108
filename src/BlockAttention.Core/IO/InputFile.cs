using System.Globalization;
using Microsoft.Win32.SafeHandles;

namespace BlockAttention.IO;

/// <summary>
/// The one way this library (and its command-line tool) reads a file it is given: only regular files,
/// never blocking on a named pipe, and never more than a stated number of bytes.
/// </summary>
/// <remarks>
/// Configuration, tokenizer and prompt files come from users and from the internet. A symbolic link to
/// <c>/dev/zero</c> would otherwise be read until memory runs out, and a named pipe would hang the
/// open forever. Every read here refuses anything but a regular file with an
/// <see cref="InputFileException"/> naming the file, and stops after <c>maxBytes + 1</c> bytes.
/// </remarks>
public static class InputFile
{
    /// <summary>Opens <paramref name="path"/> for reading, if it is a regular file.</summary>
    /// <param name="path">The file.</param>
    /// <param name="kind">What the file is, for messages (for example <c>safetensors file</c>).</param>
    /// <returns>A handle for positional reads (<see cref="RandomAccess"/>); the caller disposes it.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InputFileException">The path names a pipe, a device, a socket or a directory.</exception>
    public static SafeFileHandle OpenRegular(string path, string kind)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrEmpty(kind);
        return RegularFileOpener.Open(Path.GetFullPath(path), kind);
    }

    /// <summary>Reads the whole of <paramref name="path"/>, if it is a regular file of at most <paramref name="maxBytes"/> bytes.</summary>
    /// <param name="path">The file.</param>
    /// <param name="maxBytes">The largest size accepted.</param>
    /// <param name="kind">What the file is, for messages (for example <c>config.json</c>).</param>
    /// <param name="howToRaise">Where the limit is set, for the message (for example an option's name); optional.</param>
    /// <returns>The file's bytes.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InputFileException">The path is not a regular file, or the file is larger than <paramref name="maxBytes"/>.</exception>
    public static byte[] ReadAllBytes(string path, long maxBytes, string kind, string? howToRaise = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentException.ThrowIfNullOrEmpty(kind);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxBytes, Array.MaxLength - 1L);
        string fullPath = Path.GetFullPath(path);
        using SafeFileHandle handle = RegularFileOpener.Open(fullPath, kind);

        // The size is a hint only: /proc files report 0, and a file may grow while it is read. The loop
        // below never reads more than maxBytes + 1 bytes whatever the size says.
        long reported = RandomAccess.GetLength(handle);
        if (reported > maxBytes)
        {
            throw TooLarge(fullPath, reported.ToString(CultureInfo.InvariantCulture), maxBytes, kind, howToRaise);
        }

        var buffer = new byte[Math.Min(reported, maxBytes) + 1];
        int filled = 0;
        while (true)
        {
            if (filled == buffer.Length)
            {
                if (buffer.Length > maxBytes)
                {
                    throw TooLarge(fullPath, "more than " + maxBytes.ToString(CultureInfo.InvariantCulture), maxBytes, kind, howToRaise);
                }

                Array.Resize(ref buffer, (int)Math.Min(Math.Max(buffer.Length * 2L, 4096), maxBytes + 1));
            }

            int read = RandomAccess.Read(handle, buffer.AsSpan(filled), filled);
            if (read == 0)
            {
                break;
            }

            filled += read;
        }

        if (filled > maxBytes)
        {
            throw TooLarge(fullPath, "more than " + maxBytes.ToString(CultureInfo.InvariantCulture), maxBytes, kind, howToRaise);
        }

        Array.Resize(ref buffer, filled);
        return buffer;
    }

    private static InputFileException TooLarge(string path, string size, long maxBytes, string kind, string? howToRaise)
        => new($"The {kind} '{path}' is {size} bytes, over the limit of {maxBytes.ToString(CultureInfo.InvariantCulture)} bytes for a {kind}"
            + (howToRaise is null ? "." : $"; if the file is genuine, raise {howToRaise}."), path);
}
