using BlockAttention.AI;
using Microsoft.Extensions.AI;

namespace BlockAttention.Server.Tests;

/// <summary>
/// The conversation the chat tests send, answered in-process by a chat client of our own over the
/// fixture model: the oracle for the text the server returns (greedy, so it must match exactly).
/// </summary>
internal static class ChatOracle
{
    public const string System = "Answer briefly.";
    public const string Question = "When was the harbour rebuilt?";

    public static string FirstPassage(string tag) => $"- Title: Varnholm ({tag})\nVarnholm lies in the Kessel Sea.\n";

    public static string SecondPassage(string tag) => $"- Title: Lunde ({tag})\nLunde's harbour was rebuilt in 1911.\n";

    public static async Task<string> AnswerAsync(string tag, int maxTokens = 5)
    {
        using var session = new BlockSession(Paths.Model);
        var client = new BlockAttentionChatClient(session);
        var response = await client.GetResponseAsync(Messages(tag), new ChatOptions { MaxOutputTokens = maxTokens });
        return response.Text;
    }

    /// <summary>The tokens of every block but the final one: what a repeated request finds in the store.</summary>
    public static int LocalBlockTokens(string tag)
    {
        using var session = new BlockSession(Paths.Model);
        var prompt = new BlockAttentionChatClient(session).CreatePrompt(Messages(tag));
        return prompt.LocalBlocks.Sum(b => Paths.Model.Tokenizer!.Encode(b.Text!).Count);
    }

    private static List<ChatMessage> Messages(string tag) =>
    [
        new ChatMessage(ChatRole.System, System),
        new ChatMessage(ChatRole.User,
        [
            BlockAttentionChatClient.Passage(FirstPassage(tag)),
            BlockAttentionChatClient.Passage(SecondPassage(tag)),
            new TextContent(Question),
        ]),
    ];
}
