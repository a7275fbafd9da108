namespace BlockAttention.Prompts;

/// <summary>
/// Turns a conversation into block texts in a <see cref="ChatFormat"/>. Every text part of an
/// earlier turn is a local block and every passage a local block with exactly its text; turn
/// markers join the text next to them (a marker between two passages is a small block of its
/// own); the last turn's text and the generation prompt form the final block. The blocks
/// concatenate to exactly the conversation written in the format, so a full-attention run over
/// the same prompt sees the same text.
/// </summary>
internal static class ChatTurnRenderer
{
    public static IReadOnlyList<string> Render(IEnumerable<ChatTurn> turns, ChatFormat format, ChatPromptOptions? options)
    {
        ArgumentNullException.ThrowIfNull(turns);
        ArgumentNullException.ThrowIfNull(format);
        var list = turns.ToList();
        if (list.Count == 0)
        {
            throw new ArgumentException("a chat prompt needs at least one turn", nameof(turns));
        }

        for (int i = 0; i < list.Count; i++)
        {
            var turn = list[i];
            if (turn is null || turn.Role is not ("system" or "user" or "assistant"))
            {
                throw new ArgumentException($"turn {i}: unknown chat role '{turn?.Role}'; use system, user or assistant", nameof(turns));
            }

            if (turn.Parts is null || turn.Parts.Any(p => p is null || p.Text is null))
            {
                throw new ArgumentException($"turn {i} ({turn.Role}): its parts or a part's text is null", nameof(turns));
            }
        }

        if (list[^1].Role != "user")
        {
            throw new ArgumentException($"the last chat turn must be the user's, not '{list[^1].Role}'", nameof(turns));
        }

        var blocks = new List<string>();
        string pending = options?.AddBeginningOfText == true ? format.BeginningOfText : "";
        for (int i = 0; i < list.Count; i++)
        {
            bool last = i == list.Count - 1;
            pending += format.TurnHeader(list[i].Role);
            foreach (var part in list[i].Parts)
            {
                if (part.IsPassage)
                {
                    if (pending.Length > 0)
                    {
                        blocks.Add(pending);
                        pending = "";
                    }

                    blocks.Add(part.Text);
                }
                else if (last)
                {
                    pending += part.Text; // the last turn's text belongs to the final block
                }
                else
                {
                    blocks.Add(pending + part.Text);
                    pending = "";
                }
            }

            pending += format.EndOfTurn;
        }

        blocks.Add(pending + format.GenerationPrompt);
        return blocks;
    }
}
