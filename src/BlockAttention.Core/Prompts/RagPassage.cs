namespace BlockAttention.Prompts;

/// <summary>A retrieved passage: its title and text.</summary>
/// <param name="Title">The passage's title.</param>
/// <param name="Text">The passage's text.</param>
public sealed record RagPassage(string Title, string Text);
