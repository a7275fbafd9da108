using BlockAttention.Prompts;

namespace BlockAttention.Training.Data;

/// <summary>
/// Turns a conversation into training examples as the reference prepares chat data: one example
/// per assistant turn; every message before the last user turn is chunked into local blocks with
/// <see cref="BlockChunker"/> (the role header on its first chunk, the role footer on its last);
/// the last user turn, with <c>&lt;|assistant|&gt;\n</c> appended, is the final block.
/// </summary>
public static class ChatSampleSplitter
{
    /// <summary>The end-of-text marker that closes assistant turns in the history and every response.</summary>
    public const string EndOfText = "<|end_of_text|>";

    /// <summary>The examples of <paramref name="messages"/>: one per assistant turn that follows a user turn.</summary>
    /// <exception cref="ArgumentException">A role is not system, user or assistant.</exception>
    public static IReadOnlyList<TrainingText> Split(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        foreach (var message in messages)
        {
            if (message is null || message.Role is not ("system" or "user" or "assistant"))
            {
                throw new ArgumentException($"unknown chat role '{message?.Role}'; use system, user or assistant", nameof(messages));
            }
        }

        var samples = new List<TrainingText>();
        for (int i = 1; i < messages.Count; i++)
        {
            if (messages[i].Role != "assistant" || messages[i - 1].Role != "user")
            {
                continue;
            }

            var blocks = new List<string>();
            for (int j = 0; j < i - 1; j++)
            {
                blocks.AddRange(Chunks(messages[j]));
            }

            blocks.Add($"<|user|>\n{messages[i - 1].Content}\n<|assistant|>\n");
            samples.Add(new TrainingText(blocks, messages[i].Content));
        }

        return samples;
    }

    private static IEnumerable<string> Chunks(ChatMessage message)
    {
        string prefix = $"<|{message.Role}|>\n";
        string suffix = message.Role == "assistant" ? EndOfText + "\n" : "\n";
        var chunks = BlockChunker.Split(message.Content).ToList();
        if (chunks.Count == 0)
        {
            return [prefix + suffix];
        }

        chunks[0] = prefix + chunks[0];
        chunks[^1] += suffix;
        return chunks;
    }
}
