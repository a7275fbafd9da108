using System.Text.Json;
using BlockAttention.AI;
using BlockAttention.AspNetCore.Http;
using Microsoft.Extensions.AI;

namespace BlockAttention.AspNetCore.OpenAI;

/// <summary>
/// OpenAI messages to <see cref="Microsoft.Extensions.AI.ChatMessage"/>s for the chat client. Each text part of a
/// message is a block. In the last message (the user's), every part but the last is a passage, a
/// local block reused from the store when it recurs; the last part is the final block.
/// </summary>
internal static class ChatMessageMapper
{
    public static List<ChatMessage> Map(IReadOnlyList<ChatCompletionMessage> messages)
    {
        if (messages.Count == 0)
        {
            throw new ApiException(StatusCodes.Status400BadRequest, "'messages' is empty: send at least one user message", "messages");
        }

        var mapped = new List<ChatMessage>(messages.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            var message = messages[i] ?? throw new ApiException(StatusCodes.Status400BadRequest, $"messages[{i}] is null", $"messages[{i}]");
            var role = message.Role switch
            {
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                _ => throw new ApiException(StatusCodes.Status400BadRequest,
                    $"messages[{i}].role '{message.Role}' is not supported; use system, developer, user or assistant", $"messages[{i}].role"),
            };
            var parts = TextParts(message.Content, i);
            bool last = i == messages.Count - 1;
            var contents = parts.Select((text, p) => last && p < parts.Count - 1
                ? BlockAttentionChatClient.Passage(text)
                : (AIContent)new TextContent(text)).ToList();
            mapped.Add(new ChatMessage(role, contents));
        }

        return mapped;
    }

    private static List<string> TextParts(JsonElement? content, int index)
    {
        if (content is not { } element || element.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (element.ValueKind == JsonValueKind.String)
        {
            return [element.GetString()!];
        }

        if (element.ValueKind != JsonValueKind.Array)
        {
            throw new ApiException(StatusCodes.Status400BadRequest,
                $"messages[{index}].content must be a string or a list of parts, got {element.ValueKind}", $"messages[{index}].content");
        }

        var parts = new List<string>();
        int p = 0;
        foreach (var part in element.EnumerateArray())
        {
            string at = $"messages[{index}].content[{p++}]";
            if (part.ValueKind != JsonValueKind.Object
                || !part.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String)
            {
                throw new ApiException(StatusCodes.Status400BadRequest, $"{at} must be an object with a 'type'", at);
            }

            if (type.GetString() != "text")
            {
                throw new ApiException(StatusCodes.Status400BadRequest, $"{at} has type '{type.GetString()}'; only text parts are supported", at);
            }

            parts.Add(part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String
                ? text.GetString()!
                : throw new ApiException(StatusCodes.Status400BadRequest, $"{at}.text must be a string", $"{at}.text"));
        }

        return parts;
    }
}
