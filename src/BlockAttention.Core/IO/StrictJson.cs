using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace BlockAttention.IO;

/// <summary>
/// Parses JSON so that every string in the result can be read: a UTF-8 byte order mark is accepted,
/// while bytes that are not UTF-8 and <c>\uD800</c>-style escapes of a lone surrogate are rejected at
/// parse time.
/// </summary>
/// <remarks>
/// <see cref="JsonDocument"/> accepts both kinds of broken text and only fails later, when a string is
/// read, with an <see cref="InvalidOperationException"/> that names neither the file nor the key. Here
/// they become a <see cref="JsonException"/> with the line and byte, like any other malformed JSON, so a
/// reader's one <c>catch (JsonException)</c> reports them with its file name.
/// </remarks>
public static class StrictJson
{
    private static ReadOnlySpan<byte> ByteOrderMark => [0xEF, 0xBB, 0xBF];

    /// <summary>Parses UTF-8 JSON, after an optional byte order mark.</summary>
    /// <param name="utf8Json">The JSON text.</param>
    /// <param name="options">Comments, trailing commas and depth, as for <see cref="JsonDocument.Parse(ReadOnlyMemory{byte}, JsonDocumentOptions)"/>.</param>
    /// <returns>The document; dispose it.</returns>
    /// <exception cref="JsonException">The text is not valid JSON, not UTF-8, or escapes a lone surrogate.</exception>
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8Json, JsonDocumentOptions options = default)
    {
        if (utf8Json.Span.StartsWith(ByteOrderMark))
        {
            utf8Json = utf8Json[ByteOrderMark.Length..];
        }

        ReadOnlySpan<byte> span = utf8Json.Span;
        if (!Utf8.IsValid(span))
        {
            throw InvalidUtf8(span);
        }

        // Only an escaped string can hold a lone surrogate once the bytes are valid UTF-8.
        if (span.IndexOf("\\u"u8) >= 0)
        {
            CheckEscapedStrings(span, options);
        }

        return JsonDocument.Parse(utf8Json, options);
    }

    /// <summary>Parses JSON text held in a string.</summary>
    /// <param name="json">The JSON text.</param>
    /// <param name="options">Comments, trailing commas and depth.</param>
    /// <returns>The document; dispose it.</returns>
    /// <exception cref="JsonException">The text is not valid JSON, holds a lone surrogate, or escapes one.</exception>
    public static JsonDocument Parse(string json, JsonDocumentOptions options = default)
    {
        ArgumentNullException.ThrowIfNull(json);
        byte[] utf8;
        try
        {
            utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetBytes(json);
        }
        catch (EncoderFallbackException e)
        {
            throw new JsonException($"The JSON text holds a lone surrogate character at index {e.Index}.", e);
        }

        return Parse(utf8, options);
    }

    private static void CheckEscapedStrings(ReadOnlySpan<byte> span, JsonDocumentOptions options)
    {
        var reader = new Utf8JsonReader(span, new JsonReaderOptions
        {
            AllowTrailingCommas = options.AllowTrailingCommas,
            CommentHandling = options.CommentHandling,
            MaxDepth = options.MaxDepth,
        });

        // Read() throws JsonException for malformed JSON, which is the right error for it too.
        while (reader.Read())
        {
            if (reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && reader.ValueIsEscaped)
            {
                try
                {
                    reader.GetString();
                }
                catch (InvalidOperationException e)
                {
                    long line = 1 + CountLines(span[..(int)reader.TokenStartIndex]);
                    throw new JsonException(
                        $"A string escapes a lone surrogate (\\uD800-\\uDFFF without its pair) near byte {reader.TokenStartIndex} (line {line}).",
                        null, line - 1, null, e);
                }
            }
        }
    }

    private static JsonException InvalidUtf8(ReadOnlySpan<byte> span)
    {
        char[] scratch = ArrayPool<char>.Shared.Rent(4096);
        try
        {
            // Find the first bad byte for the message.
            long offset = 0;
            ReadOnlySpan<byte> rest = span;
            while (true)
            {
                OperationStatus status = Utf8.ToUtf16(rest, scratch, out int read, out _, replaceInvalidSequences: false, isFinalBlock: true);
                offset += read;
                if (status != OperationStatus.DestinationTooSmall)
                {
                    break;
                }

                rest = rest[read..];
            }

            long line = 1 + CountLines(span[..(int)offset]);
            return new JsonException($"The text is not valid UTF-8: byte 0x{span[(int)offset]:X2} at offset {offset} (line {line}).", null, line - 1, null);
        }
        finally
        {
            ArrayPool<char>.Shared.Return(scratch);
        }
    }

    private static int CountLines(ReadOnlySpan<byte> span) => span.Count((byte)'\n');
}
