using System.Text;
using System.Text.RegularExpressions;

namespace BlockAttention.PackageTests.Readme;

/// <summary>One command line of a README's shell blocks, continuation lines joined, comments removed.</summary>
internal sealed record ReadmeCommand(string File, int Line, string Text)
{
    private static readonly Regex s_fenceOpen = new(@"^\s*```\s*(sh|bash|shell|console)\s*$", RegexOptions.CultureInvariant);

    /// <summary>The commands of every <c>```sh</c> (or bash, shell, console) block of a markdown file.</summary>
    public static List<ReadmeCommand> Parse(string file, string markdown)
    {
        var commands = new List<ReadmeCommand>();
        string[] lines = markdown.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        bool inShellBlock = false, inOtherBlock = false;
        var current = new StringBuilder();
        int start = 0;
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i];
            string trimmed = line.Trim();
            if (!inShellBlock && !inOtherBlock)
            {
                if (s_fenceOpen.IsMatch(line))
                {
                    inShellBlock = true;
                }
                else if (trimmed.StartsWith("```", StringComparison.Ordinal))
                {
                    inOtherBlock = true;
                }

                continue;
            }

            if (trimmed.StartsWith("```", StringComparison.Ordinal))
            {
                inShellBlock = inOtherBlock = false;
                continue;
            }

            if (inOtherBlock || (current.Length == 0 && (trimmed.Length == 0 || trimmed.StartsWith('#'))))
            {
                continue;
            }

            if (current.Length == 0)
            {
                start = i + 1;
            }

            string text = StripTrailingComment(trimmed);
            if (text.EndsWith('\\'))
            {
                current.Append(text[..^1].TrimEnd()).Append(' ');
                continue;
            }

            current.Append(text);
            commands.Add(new ReadmeCommand(file, start, current.ToString().Trim()));
            current.Clear();
        }

        return commands;
    }

    /// <summary>The words of the command, split on blanks (the READMEs quote nothing that a check needs).</summary>
    public string[] Words => Text.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    public override string ToString() => $"{File}:{Line}: {Text}";

    /// <summary>Drops a comment after the command: a '#' that starts a word, outside quotes.</summary>
    private static string StripTrailingComment(string line)
    {
        char quote = '\0';
        for (int i = 0; i < line.Length; i++)
        {
            char c = line[i];
            if (quote != '\0')
            {
                quote = c == quote ? '\0' : quote;
            }
            else if (c is '\'' or '"')
            {
                quote = c;
            }
            else if (c == '#' && i > 0 && char.IsWhiteSpace(line[i - 1]))
            {
                return line[..i].TrimEnd();
            }
        }

        return line;
    }
}
