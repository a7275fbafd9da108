using System.Buffers.Binary;
using BlockAttention.IO;
using Microsoft.Win32.SafeHandles;

namespace BlockAttention.Llama.Checkpoints;

/// <summary>
/// A reader of one safetensors file: an 8-byte little-endian header length, a UTF-8 JSON header
/// (tensor name to dtype, shape and data offsets, plus optional <c>__metadata__</c> strings), then the
/// raw tensor bytes.
/// </summary>
/// <remarks>
/// <para>
/// Only the header is read at <see cref="Open"/>; tensor bytes are read on demand, straight from the
/// file into the caller's buffer (typically the memory of a freshly allocated tensor), so a
/// multi-gigabyte checkpoint is never held in managed memory, let alone twice.
/// </para>
/// <para>
/// The whole header is validated at <see cref="Open"/>; every problem throws a
/// <see cref="CheckpointFormatException"/> naming the file and the tensor at fault. Reads use
/// positional I/O, so concurrent <see cref="ReadInto(string, Span{byte})"/> calls are safe.
/// </para>
/// </remarks>
public sealed class SafetensorsFile : IDisposable
{
    /// <summary>
    /// The largest header accepted by default, as in the reference implementation: a guard against a
    /// corrupt length (<see cref="CheckpointFileLimits.SafetensorsHeaderBytes"/> changes it).
    /// </summary>
    public const long MaxHeaderLength = 100_000_000;

    private const int LengthPrefixSize = sizeof(ulong);

    private readonly SafeFileHandle _handle;
    private readonly SafetensorsHeader _header;

    private SafetensorsFile(string path, SafeFileHandle handle, SafetensorsHeader header)
    {
        Path = path;
        _handle = handle;
        _header = header;
    }

    /// <summary>The full path of the file.</summary>
    public string Path { get; }

    /// <summary>Every tensor in the file, by name.</summary>
    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors => _header.Tensors;

    /// <summary>Tensor names in the order the header lists them.</summary>
    public IReadOnlyList<string> TensorNames => _header.TensorNames;

    /// <summary>The header's <c>__metadata__</c> strings (for example <c>format</c> = <c>pt</c>); empty when absent.</summary>
    public IReadOnlyDictionary<string, string> Metadata => _header.Metadata;

    /// <summary>Opens <paramref name="path"/> and reads and validates its header.</summary>
    /// <param name="path">The <c>.safetensors</c> file.</param>
    /// <param name="limits">The largest header accepted (<see cref="CheckpointFileLimits.SafetensorsHeaderBytes"/>; default: <see cref="CheckpointFileLimits.Default"/>).</param>
    /// <returns>The open file; dispose it to close the handle.</returns>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InputFileException">The path is not a regular file (a pipe, a device, a directory).</exception>
    /// <exception cref="CheckpointFormatException">The file is truncated, its header is malformed or over the limit, or a tensor has an unsupported dtype.</exception>
    public static SafetensorsFile Open(string path, CheckpointFileLimits? limits = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        limits ??= CheckpointFileLimits.Default;
        limits.Validate();
        string fullPath = System.IO.Path.GetFullPath(path);
        SafeFileHandle handle = InputFile.OpenRegular(fullPath, "safetensors file");
        try
        {
            SafetensorsHeader header = ReadHeader(handle, fullPath, limits.SafetensorsHeaderBytes);
            return new SafetensorsFile(fullPath, handle, header);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor called <paramref name="name"/>.</summary>
    /// <param name="name">The tensor name.</param>
    /// <returns><see langword="true"/> when the tensor is present.</returns>
    public bool Contains(string name) => _header.Tensors.ContainsKey(name);

    /// <summary>The dtype, shape and location of <paramref name="name"/>.</summary>
    /// <param name="name">The tensor name.</param>
    /// <returns>The tensor's description.</returns>
    /// <exception cref="MissingTensorException">The file has no such tensor.</exception>
    public SafetensorsTensorInfo GetInfo(string name)
        => _header.Tensors.TryGetValue(name, out SafetensorsTensorInfo? info) ? info : throw new MissingTensorException(name, Path);

    /// <summary>Reads the raw bytes of tensor <paramref name="name"/> into <paramref name="destination"/>.</summary>
    /// <param name="name">The tensor name.</param>
    /// <param name="destination">Exactly <see cref="SafetensorsTensorInfo.ByteLength"/> bytes; they are little-endian elements of the tensor's dtype, row-major.</param>
    /// <exception cref="MissingTensorException">The file has no such tensor.</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is not the tensor's size.</exception>
    public void ReadInto(string name, Span<byte> destination)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        if (destination.Length != info.ByteLength)
        {
            throw new ArgumentException(
                $"Tensor '{name}' is {info.ByteLength} bytes; the destination is {destination.Length}.", nameof(destination));
        }

        ReadExactly(_handle, destination, info.ByteOffset, Path, name);
    }

    /// <summary>
    /// Reads part of tensor <paramref name="name"/>, starting <paramref name="tensorOffset"/> bytes into it,
    /// to fill <paramref name="destination"/>.
    /// </summary>
    /// <remarks>For tensors larger than a span can address (2 GiB), or to copy in chunks.</remarks>
    /// <param name="name">The tensor name.</param>
    /// <param name="tensorOffset">Where to start, in bytes from the start of the tensor.</param>
    /// <param name="destination">The bytes to fill; must not run past the end of the tensor.</param>
    /// <exception cref="MissingTensorException">The file has no such tensor.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The range runs outside the tensor.</exception>
    public void ReadInto(string name, long tensorOffset, Span<byte> destination)
    {
        SafetensorsTensorInfo info = GetInfo(name);
        ArgumentOutOfRangeException.ThrowIfNegative(tensorOffset);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(tensorOffset, info.ByteLength - destination.Length);
        ReadExactly(_handle, destination, info.ByteOffset + tensorOffset, Path, name);
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => _handle.Dispose();

    private static SafetensorsHeader ReadHeader(SafeFileHandle handle, string path, long maxHeaderLength)
    {
        long fileLength = RandomAccess.GetLength(handle);
        if (fileLength < LengthPrefixSize)
        {
            throw new CheckpointFormatException(
                $"Safetensors file '{path}' is {fileLength} bytes, too short for the 8-byte header length.", path);
        }

        Span<byte> prefix = stackalloc byte[LengthPrefixSize];
        ReadExactly(handle, prefix, 0, path, null);
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (headerLength > (ulong)maxHeaderLength)
        {
            throw new CheckpointFormatException(
                $"Safetensors file '{path}' declares a header of {headerLength} bytes, more than the {maxHeaderLength} allowed; the file is corrupt or not safetensors"
                + $" (if it is genuine, raise {CheckpointFileLimits.Hint(nameof(CheckpointFileLimits.SafetensorsHeaderBytes))}).",
                path);
        }

        if ((long)headerLength > fileLength - LengthPrefixSize)
        {
            throw new CheckpointFormatException(
                $"Safetensors file '{path}' declares a header of {headerLength} bytes but only {fileLength - LengthPrefixSize} follow the length; the file is truncated or not safetensors.",
                path);
        }

        byte[] json = new byte[headerLength];
        ReadExactly(handle, json, LengthPrefixSize, path, null);
        long dataStart = LengthPrefixSize + (long)headerLength;
        return SafetensorsHeader.Parse(json, dataStart, fileLength - dataStart, path);
    }

    private static void ReadExactly(SafeFileHandle handle, Span<byte> buffer, long offset, string path, string? tensorName)
    {
        while (!buffer.IsEmpty)
        {
            int read = RandomAccess.Read(handle, buffer, offset);
            if (read == 0)
            {
                // Open checked every range against the file size, so the file must have shrunk since.
                string what = tensorName is null ? "its header" : $"tensor '{tensorName}' at byte {offset}";
                throw new CheckpointFormatException(
                    $"Safetensors file '{path}' ended while reading {what}; was it truncated after opening?", path, tensorName);
            }

            buffer = buffer[read..];
            offset += read;
        }
    }
}
