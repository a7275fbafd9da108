using System.Text.Json;
using BlockAttention.IO;

namespace BlockAttention.Llama.Checkpoints;

/// <summary>
/// The parsed and validated JSON header of a safetensors file: every tensor's dtype, shape and
/// absolute byte range, and the optional <c>__metadata__</c> strings.
/// </summary>
/// <remarks>
/// Validation happens here, once, so that a read never trusts an offset it has not checked: every
/// range lies inside the data section, matches its shape and dtype, and overlaps no other tensor.
/// </remarks>
internal sealed class SafetensorsHeader
{
    private const string MetadataKey = "__metadata__";

    private SafetensorsHeader(List<SafetensorsTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        var byName = new Dictionary<string, SafetensorsTensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (SafetensorsTensorInfo tensor in tensors)
        {
            byName.Add(tensor.Name, tensor);
        }

        Tensors = byName;
        TensorNames = tensors.ConvertAll(t => t.Name);
        Metadata = metadata;
    }

    public IReadOnlyDictionary<string, SafetensorsTensorInfo> Tensors { get; }

    /// <summary>Tensor names in header order (a dictionary does not promise to keep it).</summary>
    public IReadOnlyList<string> TensorNames { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Parses <paramref name="json"/>, the header of the file at <paramref name="path"/>.</summary>
    /// <param name="json">The header bytes (UTF-8 JSON, possibly padded with trailing spaces).</param>
    /// <param name="dataStart">The absolute offset of the data section: 8 + header length.</param>
    /// <param name="dataLength">The size of the data section in bytes.</param>
    /// <param name="path">The file, for error messages.</param>
    public static SafetensorsHeader Parse(ReadOnlyMemory<byte> json, long dataStart, long dataLength, string path)
    {
        JsonDocument document;
        try
        {
            document = StrictJson.Parse(json);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(
                $"Safetensors file '{path}' has a header that is not valid JSON: {e.Message}", path, null, e);
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new CheckpointFormatException(
                    $"Safetensors file '{path}' has a header that is a JSON {root.ValueKind}, not an object.", path);
            }

            var tensors = new List<SafetensorsTensorInfo>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            Dictionary<string, string>? metadata = null;
            foreach (JsonProperty property in root.EnumerateObject())
            {
                // JsonDocument keeps duplicate keys; a second entry for a name would make the file ambiguous.
                if (!seen.Add(property.Name))
                {
                    throw new CheckpointFormatException(
                        $"Safetensors file '{path}' lists '{property.Name}' twice in its header.", path, property.Name);
                }

                if (property.Name == MetadataKey)
                {
                    metadata = ParseMetadata(property.Value, path);
                }
                else
                {
                    tensors.Add(ParseTensor(property.Name, property.Value, dataStart, dataLength, path));
                }
            }

            CheckNoOverlap(tensors, path);
            return new SafetensorsHeader(tensors, metadata ?? new Dictionary<string, string>(StringComparer.Ordinal));
        }
    }

    private static Dictionary<string, string> ParseMetadata(JsonElement element, string path)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new CheckpointFormatException(
                $"Safetensors file '{path}': '{MetadataKey}' is a JSON {element.ValueKind}, expected an object of strings.",
                path, MetadataKey);
        }

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (JsonProperty entry in element.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw new CheckpointFormatException(
                    $"Safetensors file '{path}': '{MetadataKey}' entry '{entry.Name}' is a JSON {entry.Value.ValueKind}, expected a string.",
                    path, entry.Name);
            }

            metadata[entry.Name] = entry.Value.GetString()!;
        }

        return metadata;
    }

    private static SafetensorsTensorInfo ParseTensor(string name, JsonElement entry, long dataStart, long dataLength, string path)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(path, name, $"is a JSON {entry.ValueKind}, expected an object with dtype, shape and data_offsets");
        }

        // dtype first: for an unsupported dtype the element size is unknown, so the other checks cannot run.
        JsonElement dtypeElement = Require(entry, "dtype", JsonValueKind.String, name, path);
        string dtypeText = dtypeElement.GetString()!;
        if (!SafetensorsDTypeExtensions.TryParse(dtypeText, out SafetensorsDType dtype))
        {
            throw Invalid(path, name, $"has unsupported dtype '{dtypeText}' (supported: F32, F16, BF16)");
        }

        JsonElement shapeElement = Require(entry, "shape", JsonValueKind.Array, name, path);
        var shape = new long[shapeElement.GetArrayLength()];
        long elementCount = 1;
        int axis = 0;
        foreach (JsonElement dimension in shapeElement.EnumerateArray())
        {
            if (dimension.ValueKind != JsonValueKind.Number || !dimension.TryGetInt64(out long size) || size < 0)
            {
                throw Invalid(path, name, $"has shape entry {dimension.GetRawText()} at axis {axis}, expected a non-negative integer");
            }

            shape[axis++] = size;
            elementCount = MultiplyOrThrow(elementCount, size, path, name);
        }

        long expectedLength = MultiplyOrThrow(elementCount, dtype.SizeInBytes(), path, name);

        JsonElement offsetsElement = Require(entry, "data_offsets", JsonValueKind.Array, name, path);
        if (offsetsElement.GetArrayLength() != 2
            || !TryGetOffset(offsetsElement[0], out long begin)
            || !TryGetOffset(offsetsElement[1], out long end))
        {
            throw Invalid(path, name, $"has data_offsets {offsetsElement.GetRawText()}, expected [begin, end] of two non-negative integers");
        }

        if (end < begin)
        {
            throw Invalid(path, name, $"has data_offsets [{begin}, {end}] that end before they begin");
        }

        if (end > dataLength)
        {
            throw Invalid(path, name, $"has data_offsets [{begin}, {end}] past the end of the data section ({dataLength} bytes); the file may be truncated");
        }

        if (end - begin != expectedLength)
        {
            throw Invalid(path, name,
                $"has data_offsets [{begin}, {end}] ({end - begin} bytes) but shape [{string.Join(", ", shape)}] of {dtypeText} needs {expectedLength} bytes");
        }

        return new SafetensorsTensorInfo(name, dtype, shape, dataStart + begin, expectedLength, elementCount);
    }

    private static void CheckNoOverlap(List<SafetensorsTensorInfo> tensors, string path)
    {
        // Empty tensors occupy no bytes, so they cannot overlap anything wherever their offsets point.
        var occupied = tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.ByteOffset).ToList();
        for (int i = 1; i < occupied.Count; i++)
        {
            SafetensorsTensorInfo previous = occupied[i - 1];
            SafetensorsTensorInfo current = occupied[i];
            if (current.ByteOffset < previous.ByteOffset + previous.ByteLength)
            {
                throw new CheckpointFormatException(
                    $"Safetensors file '{path}': tensor '{current.Name}' overlaps tensor '{previous.Name}' in the data section.",
                    path, current.Name);
            }
        }
    }

    private static JsonElement Require(JsonElement entry, string key, JsonValueKind kind, string name, string path)
    {
        if (!entry.TryGetProperty(key, out JsonElement value))
        {
            throw Invalid(path, name, $"has no '{key}'");
        }

        if (value.ValueKind != kind)
        {
            throw Invalid(path, name, $"has '{key}' of JSON type {value.ValueKind}, expected {kind}");
        }

        return value;
    }

    private static bool TryGetOffset(JsonElement element, out long offset)
    {
        offset = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out offset) && offset >= 0;
    }

    private static long MultiplyOrThrow(long a, long b, string path, string name)
    {
        try
        {
            return checked(a * b);
        }
        catch (OverflowException)
        {
            throw Invalid(path, name, "has a shape whose size overflows 64 bits");
        }
    }

    private static CheckpointFormatException Invalid(string path, string name, string problem)
        => new($"Safetensors file '{path}': tensor '{name}' {problem}.", path, name);
}
