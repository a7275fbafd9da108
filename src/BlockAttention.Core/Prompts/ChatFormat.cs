namespace BlockAttention.Prompts;

/// <summary>
/// How a checkpoint expects a conversation to be written: the text around each turn and the
/// header that asks the model to answer. Two layouts are built in: <see cref="Tulu"/> (what the
/// Block-Attention checkpoints such as Tulu3-Block-FT were fine-tuned on) and <see cref="Llama3"/>
/// (the header layout of Llama 3 instruct models).
/// </summary>
/// <remarks>
/// Turn markers are plain text here: the tokenizer maps the text of a special token (such as
/// <c>&lt;|eot_id|&gt;</c>) to its single id. No beginning-of-text token is added unless
/// <see cref="ChatPromptOptions.AddBeginningOfText"/> asks for it, as in the reference
/// implementation, which adds none.
/// </remarks>
public sealed class ChatFormat
{
    private readonly Func<string, string> _header;

    private ChatFormat(string name, Func<string, string> header, string endOfTurn, string beginningOfText, IReadOnlyList<string> stopStrings)
    {
        Name = name;
        _header = header;
        EndOfTurn = endOfTurn;
        BeginningOfText = beginningOfText;
        StopStrings = stopStrings;
    }

    /// <summary>
    /// The Tulu layout: each turn is <c>&lt;|{role}|&gt;\n{content}\n</c> and the prompt ends with
    /// <c>&lt;|assistant|&gt;\n</c>. Generation also stops at <c>&lt;|user|&gt;</c>, which the model
    /// may write as text when it starts a turn of its own.
    /// </summary>
    public static ChatFormat Tulu { get; } = new("tulu", role => $"<|{role}|>\n", "\n", "<|begin_of_text|>",
        [.. EndOfTextMarkers, "<|user|>"]);

    /// <summary>
    /// The Llama 3 header layout: each turn is
    /// <c>&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content}&lt;|eot_id|&gt;</c> and the
    /// prompt ends with the assistant's header.
    /// </summary>
    public static ChatFormat Llama3 { get; } = new("llama3", role => $"<|start_header_id|>{role}<|end_header_id|>\n\n", "<|eot_id|>",
        "<|begin_of_text|>", EndOfTextMarkers);

    /// <summary>The formats by <see cref="Name"/>.</summary>
    public static IReadOnlyList<ChatFormat> All { get; } = [Tulu, Llama3];

    /// <summary>The format's name: <c>tulu</c> or <c>llama3</c>.</summary>
    public string Name { get; }

    /// <summary>The text that closes a turn.</summary>
    public string EndOfTurn { get; }

    /// <summary>The text of the beginning-of-text token, added only when asked for.</summary>
    public string BeginningOfText { get; }

    /// <summary>Generation stops at these strings by default for prompts in this format (never at <c>Question:</c>).</summary>
    public IReadOnlyList<string> StopStrings { get; }

    /// <summary>The header that opens a turn of <paramref name="role"/>.</summary>
    public string TurnHeader(string role) => _header(role);

    /// <summary>The text after the last turn that asks the model to answer: the assistant's header.</summary>
    public string GenerationPrompt => _header("assistant");

    /// <summary>The format named <paramref name="name"/> (<c>tulu</c> or <c>llama3</c>, any case).</summary>
    /// <exception cref="ArgumentException">No format has that name.</exception>
    public static ChatFormat FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return All.FirstOrDefault(f => string.Equals(f.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"unknown chat format '{name}'; use {string.Join(" or ", All.Select(f => f.Name))}", nameof(name));
    }

    /// <summary>
    /// Recognises the layout of a Hugging Face <c>chat_template</c> (from <c>tokenizer_config.json</c>):
    /// Llama 3 headers (<c>&lt;|start_header_id|&gt;</c>) or Tulu role tags (<c>&lt;|user|&gt;</c>).
    /// Returns null when the template is neither.
    /// </summary>
    public static ChatFormat? FromChatTemplate(string? chatTemplate)
    {
        if (string.IsNullOrEmpty(chatTemplate))
        {
            return null;
        }

        if (chatTemplate.Contains("<|start_header_id|>", StringComparison.Ordinal))
        {
            return Llama3;
        }

        return chatTemplate.Contains("<|user|>", StringComparison.Ordinal) || chatTemplate.Contains("<|assistant|>", StringComparison.Ordinal)
            ? Tulu
            : null;
    }

    /// <inheritdoc />
    public override string ToString() => Name;

    private static string[] EndOfTextMarkers => ["<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<|endoftext|>", "</s>"];
}
