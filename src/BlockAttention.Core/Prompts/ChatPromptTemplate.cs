namespace BlockAttention.Prompts;

/// <summary>
/// Renders a conversation in the Tulu layout the Block-Attention checkpoints were fine-tuned on:
/// each turn as <c>&lt;|{role}|&gt;\n{content}\n</c>, the prompt ending with <c>&lt;|assistant|&gt;\n</c>.
/// </summary>
/// <remarks>
/// Every turn before the last user turn is chunked with <see cref="BlockChunker"/> into local
/// blocks; the last user turn and the assistant header form the final block, kept whole, as the
/// reference does when it prepares chat data.
/// </remarks>
public static class ChatPromptTemplate
{
    /// <summary>The blocks of the conversation; the last is the final block.</summary>
    /// <exception cref="ArgumentException">There is no message, a role is unknown, or the last message is not from the user.</exception>
    public static IReadOnlyList<string> Render(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = messages.ToList();
        if (list.Count == 0)
        {
            throw new ArgumentException("a chat prompt needs at least one message", nameof(messages));
        }

        foreach (var message in list)
        {
            if (message is null || message.Role is not ("system" or "user" or "assistant"))
            {
                throw new ArgumentException($"unknown chat role '{message?.Role}'; use system, user or assistant", nameof(messages));
            }
        }

        if (list[^1].Role != "user")
        {
            throw new ArgumentException($"the last chat message must be the user's, not '{list[^1].Role}'", nameof(messages));
        }

        var blocks = new List<string>();
        foreach (var message in list.Take(list.Count - 1))
        {
            blocks.AddRange(BlockChunker.Split(Turn(message)));
        }

        blocks.Add(Turn(list[^1]) + "<|assistant|>\n");
        return blocks;
    }

    private static string Turn(ChatMessage message) => $"<|{message.Role}|>\n{message.Content}\n";
}
