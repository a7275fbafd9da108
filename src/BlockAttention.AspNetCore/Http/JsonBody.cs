using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;

namespace BlockAttention.AspNetCore.Http;

/// <summary>Reads a JSON request body with a size limit, turning every kind of bad body into an <see cref="ApiException"/>.</summary>
internal static class JsonBody
{
    public static async Task<T> ReadAsync<T>(HttpRequest request, BlockAttentionServerOptions limits, CancellationToken cancellationToken)
        where T : class
    {
        long maxBytes = limits.MaxRequestBodyBytes;
        string setting = limits.Key(nameof(limits.MaxRequestBodyBytes));
        // The server's own limit (Kestrel's is 30 MB by default) gives way to this endpoint's.
        if (request.HttpContext.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodySize)
        {
            bodySize.MaxRequestBodySize = maxBytes;
        }

        if (request.ContentLength > maxBytes)
        {
            throw TooLarge(maxBytes, setting);
        }

        // Read at most maxBytes + 1 bytes whatever Content-Length says (chunked bodies have none).
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        try
        {
            while ((read = await request.Body.ReadAsync(chunk, cancellationToken)) > 0)
            {
                if (buffer.Length + read > maxBytes)
                {
                    throw TooLarge(maxBytes, setting);
                }

                buffer.Write(chunk, 0, read);
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw TooLarge(maxBytes, setting);
        }

        if (buffer.Length == 0)
        {
            throw new ApiException(StatusCodes.Status400BadRequest, "the request body is empty: send a JSON object");
        }

        try
        {
            return JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), ServerJson.Options)
                ?? throw new ApiException(StatusCodes.Status400BadRequest, "the request body is JSON null: send a JSON object");
        }
        catch (JsonException e)
        {
            // The message names the path of the bad value, e.g. "$.blocks[1]".
            throw new ApiException(StatusCodes.Status400BadRequest, $"the request body is not valid JSON for this endpoint: {e.Message}", e.Path);
        }
    }

    private static ApiException TooLarge(long maxBytes, string setting) =>
        new(StatusCodes.Status413PayloadTooLarge, $"the request body is larger than the limit of {maxBytes} bytes ({setting})");
}
