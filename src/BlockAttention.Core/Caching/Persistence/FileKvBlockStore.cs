using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace BlockAttention.Caching.Persistence;

/// <summary>
/// An <see cref="IKvBlockStore"/> that keeps one file per block (in <see cref="KvBlockFormat"/>)
/// under a directory, so blocks survive restarts and are shared by processes on one machine.
/// </summary>
/// <remarks>
/// <para>
/// Crash-safe: a block is written to a temporary file in the same directory, flushed to disk, and
/// renamed over its final name (an atomic replace), so a reader sees either no file or a whole
/// one, never a half-written block, even when the writer is killed. Temporary files left by a dead
/// writer are deleted when a store opens the directory; a live writer holds an exclusive lock on
/// its temporary file, so another process never deletes it under it.
/// </para>
/// <para>
/// Every read verifies the file (length, version, model fingerprint, dtype, token ids, checksum).
/// A file that fails is a miss: it is deleted, logged as a warning, and counted in
/// <see cref="DamagedFiles"/>.
/// </para>
/// <para>
/// Bounded by <see cref="FileKvBlockStoreOptions.MaxBytes"/>: the store tracks the sizes and last
/// access of the files it knows (the ones found at start, written, or read), and deletes the
/// least recently used when a write takes it over. Processes sharing the directory each enforce
/// their own budget over the files they know.
/// </para>
/// </remarks>
public sealed class FileKvBlockStore : IKvBlockStore
{
    /// <summary>The extension of block files.</summary>
    public const string BlockFileExtension = ".kvb";

    private const string TemporaryPrefix = ".writing-";
    private const string TemporaryExtension = ".tmp";

    private readonly string _directory;
    private readonly long _maxBytes;
    private readonly ScalarType _dtype;
    private readonly Device _device;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, FileEntry> _files = new(StringComparer.Ordinal);
    private readonly Lock _evictionLock = new();
    private long _hits, _misses, _sets, _rejected, _evictions, _bytes, _damaged;

    /// <summary>Opens (or creates) the directory, indexes the block files in it and deletes temporary files that dead writers left.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    /// <exception cref="IOException">The directory cannot be created or listed.</exception>
    public FileKvBlockStore(FileKvBlockStoreOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Directory);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(options.MaxBytes);
        _directory = Path.GetFullPath(options.Directory);
        _maxBytes = options.MaxBytes;
        _dtype = options.DType;
        _device = new Device(options.Device);
        _logger = (options.LoggerFactory ?? NullLoggerFactory.Instance).CreateLogger<FileKvBlockStore>();
        System.IO.Directory.CreateDirectory(_directory);
        Scan();
    }

    /// <summary>The directory holding the block files.</summary>
    public string DirectoryPath => _directory;

    /// <summary>Files that failed verification on read (and were deleted) since the store was created.</summary>
    public long DamagedFiles => Interlocked.Read(ref _damaged);

    /// <inheritdoc />
    /// <remarks>Entries and Bytes count the block files this store knows of.</remarks>
    public KvBlockStoreStatistics Statistics => new(
        Interlocked.Read(ref _hits), Interlocked.Read(ref _misses), Interlocked.Read(ref _sets), Interlocked.Read(ref _rejected),
        Interlocked.Read(ref _evictions), _files.Count, Interlocked.Read(ref _bytes));

    /// <summary>The path of the file that holds the block of <paramref name="key"/>.</summary>
    public string PathOf(BlockKey key)
    {
        // The fingerprint is hashed so that any fingerprint text makes a valid file name.
        string model = Convert.ToHexStringLower(XxHash64.Hash(Encoding.UTF8.GetBytes(key.ModelFingerprint)));
        return Path.Combine(_directory, $"{model}-{key.TokenHash}-{key.TokenCount}{BlockFileExtension}");
    }

    /// <inheritdoc />
    public async ValueTask<KvBlock?> TryGetAsync(BlockKey key, ReadOnlyMemory<int> tokens, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        string path = PathOf(key);
        var block = await Task.Run(() => Read(path, key, tokens.Span), cancellationToken).ConfigureAwait(false);
        Interlocked.Increment(ref block is null ? ref _misses : ref _hits);
        return block;
    }

    /// <inheritdoc />
    /// <remarks>
    /// Writes synchronously on a thread-pool thread and returns when the file is in place. A
    /// failed write (disk full, permissions) is logged and returns false; it never throws.
    /// </remarks>
    public async ValueTask<bool> SetAsync(KvBlock block, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(block);
        cancellationToken.ThrowIfCancellationRequested();
        if (KvBlockFormat.SerializedLength(block) > _maxBytes)
        {
            Interlocked.Increment(ref _rejected);
            return false;
        }

        if (!block.TryAcquire())
        {
            throw new ArgumentException($"block {block.Key} was already freed", nameof(block));
        }

        try
        {
            return await Task.Run(() => Write(block), CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            block.Release();
        }
    }

    /// <inheritdoc />
    public ValueTask<bool> RemoveAsync(BlockKey key, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        string path = PathOf(key);
        bool existed = File.Exists(path);
        Delete(path);
        return ValueTask.FromResult(existed);
    }

    private KvBlock? Read(string path, BlockKey key, ReadOnlySpan<int> tokens)
    {
        FileStream stream;
        try
        {
            // Unbuffered: the payload is read straight into tensor memory.
            stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            Forget(path);
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(e, "Block file {Path} could not be opened; treating it as a miss", path);
            return null;
        }

        try
        {
            using (stream)
            {
                long length = stream.Length;
                var block = KvBlockFormat.Read(stream, key, tokens, _dtype, _device, length);
                Touch(path, length);
                return block;
            }
        }
        catch (KvBlockFormatException e)
        {
            Interlocked.Increment(ref _damaged);
            _logger.LogWarning("Block file {Path} is unusable ({Reason}); deleted, the block will be encoded again", path, e.Message);
            Delete(path);
            return null;
        }
        catch (IOException e)
        {
            _logger.LogWarning(e, "Block file {Path} could not be read; treating it as a miss", path);
            return null;
        }
    }

    private bool Write(KvBlock block)
    {
        string path = PathOf(block.Key);
        string temporary = Path.Combine(_directory, $"{TemporaryPrefix}{Guid.NewGuid():N}{TemporaryExtension}");
        try
        {
            // FileShare.None takes an exclusive advisory lock: a store opening the directory
            // meanwhile sees the file is in use and leaves it alone.
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1 << 16))
            {
                KvBlockFormat.Write(block, stream);
                stream.Flush(flushToDisk: true);
                // Renamed while still open and locked: an atomic replace of any earlier file.
                File.Move(temporary, path, overwrite: true);
            }

            long length = new FileInfo(path).Length;
            Touch(path, length);
            Interlocked.Increment(ref _sets);
            Evict(keep: path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(e, "Block {Key} could not be written to {Path}; it stays in memory only", block.Key, path);
            TryDelete(temporary);
            Interlocked.Increment(ref _rejected);
            return false;
        }
    }

    /// <summary>Deletes least recently used files until the known bytes fit the budget, never <paramref name="keep"/>.</summary>
    private void Evict(string keep)
    {
        if (Interlocked.Read(ref _bytes) <= _maxBytes)
        {
            return;
        }

        lock (_evictionLock)
        {
            foreach (var (path, _) in _files.ToArray().OrderBy(pair => pair.Value.LastAccessTicks))
            {
                if (Interlocked.Read(ref _bytes) <= _maxBytes)
                {
                    break;
                }

                if (path != keep && Forget(path))
                {
                    TryDelete(path);
                    Interlocked.Increment(ref _evictions);
                }
            }
        }
    }

    private void Touch(string path, long length)
    {
        long now = DateTime.UtcNow.Ticks;
        _files.AddOrUpdate(path,
            _ =>
            {
                Interlocked.Add(ref _bytes, length);
                return new FileEntry(length, now);
            },
            (_, old) =>
            {
                Interlocked.Add(ref _bytes, length - old.Length);
                return new FileEntry(length, now);
            });
    }

    private bool Forget(string path)
    {
        if (_files.TryRemove(path, out var entry))
        {
            Interlocked.Add(ref _bytes, -entry.Length);
            return true;
        }

        return false;
    }

    private void Delete(string path)
    {
        Forget(path);
        TryDelete(path);
    }

    private void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(e, "Could not delete {Path}", path);
        }
    }

    private void Scan()
    {
        foreach (var file in new DirectoryInfo(_directory).EnumerateFiles())
        {
            if (file.Name.StartsWith(TemporaryPrefix, StringComparison.Ordinal) && file.Name.EndsWith(TemporaryExtension, StringComparison.Ordinal))
            {
                DeleteIfAbandoned(file.FullName);
            }
            else if (file.Name.EndsWith(BlockFileExtension, StringComparison.Ordinal))
            {
                // Oldest access first: the last-write time is what survives a restart.
                _files[file.FullName] = new FileEntry(file.Length, file.LastWriteTimeUtc.Ticks);
                Interlocked.Add(ref _bytes, file.Length);
            }
        }
    }

    /// <summary>Deletes a temporary file unless a live writer still holds its lock.</summary>
    private void DeleteIfAbandoned(string path)
    {
        try
        {
            using (new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
            {
                File.Delete(path); // we hold the lock now, so no writer can be renaming it
            }

            _logger.LogInformation("Deleted {Path}, left by a writer that stopped before finishing", path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // In use by a live writer, or already gone: leave it.
        }
    }

    private readonly record struct FileEntry(long Length, long LastAccessTicks);
}
