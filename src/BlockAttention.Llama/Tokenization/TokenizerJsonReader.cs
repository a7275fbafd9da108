using System.Text.Json;
using BlockAttention.Llama.Checkpoints;

namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// Reads a Hugging Face <c>tokenizer.json</c> of the Llama 3 kind (byte-level BPE, a <c>Split</c> regex then
/// <c>ByteLevel</c> pre-tokenizer, no normalizer) and rejects anything else with a message that names the
/// key at fault, since silently tokenizing differently from the reference would corrupt every prompt.
/// </summary>
internal static class TokenizerJsonReader
{
    // Ids index rows of the embedding; one past the largest must still be an int (the vocabulary size).
    internal const int MaxTokenId = int.MaxValue - 1;

    public static TokenizerDefinition Read(string path, CheckpointFileLimits? limits = null)
    {
        limits ??= CheckpointFileLimits.Default;
        limits.Validate();
        using JsonDocument document = JsonFile.Parse(path, limits.TokenizerJsonBytes, nameof(CheckpointFileLimits.TokenizerJsonBytes));
        JsonElement root = JsonFile.Object(path, document.RootElement, "(root)");

        // The model first: a file without one is not a tokenizer.json at all, and that is the clearest message.
        JsonElement model = JsonFile.Object(path, JsonFile.Required(path, root, "", "model"), "model");
        string type = model.TryGetProperty("type", out JsonElement typeElement) ? JsonFile.String(path, typeElement, "model.type") : "BPE";
        if (type != "BPE")
        {
            throw new TokenizerFormatException(path, $"model.type is '{type}'; only 'BPE' (byte-level, as in Llama 3) is supported");
        }

        if (model.TryGetProperty("byte_fallback", out JsonElement byteFallback) && byteFallback.ValueKind == JsonValueKind.True)
        {
            throw new TokenizerFormatException(path, "model.byte_fallback is true (a SentencePiece-style BPE); only byte-level BPE is supported");
        }

        RequireNullOrEmpty(path, model, "continuing_subword_prefix");
        RequireNullOrEmpty(path, model, "end_of_word_suffix");

        RequireNull(path, root, "normalizer");
        string splitPattern = ReadPreTokenizer(path, root);
        ReadDecoder(path, root);

        Dictionary<string, int> vocabulary = ReadVocabulary(path, model);
        List<string> merges = ReadMerges(path, model, vocabulary);
        bool ignoreMerges = model.TryGetProperty("ignore_merges", out JsonElement ignore) && ignore.ValueKind == JsonValueKind.True;
        List<AddedToken> addedTokens = ReadAddedTokens(path, root, vocabulary);

        return new TokenizerDefinition(vocabulary, merges, addedTokens, splitPattern, ignoreMerges);
    }

    private static string ReadPreTokenizer(string path, JsonElement root)
    {
        // Llama 3: Sequence[Split(Regex, Isolated), ByteLevel(use_regex: false)]. The ByteLevel step only maps
        // bytes to characters there; its own GPT-2 regex (use_regex: true) would be a different split.
        JsonElement pre = JsonFile.Object(path, JsonFile.Required(path, root, "", "pre_tokenizer"), "pre_tokenizer");
        ExpectType(path, pre, "pre_tokenizer", "Sequence");
        JsonElement steps = JsonFile.Required(path, pre, "pre_tokenizer", "pretokenizers");
        if (steps.ValueKind != JsonValueKind.Array || steps.GetArrayLength() != 2)
        {
            throw new TokenizerFormatException(path, "pre_tokenizer.pretokenizers must be [Split, ByteLevel], as in Llama 3");
        }

        JsonElement split = JsonFile.Object(path, steps[0], "pre_tokenizer.pretokenizers[0]");
        ExpectType(path, split, "pre_tokenizer.pretokenizers[0]", "Split");
        ExpectString(path, split, "pre_tokenizer.pretokenizers[0]", "behavior", "Isolated");
        if (split.TryGetProperty("invert", out JsonElement invert) && invert.ValueKind == JsonValueKind.True)
        {
            throw new TokenizerFormatException(path, "pre_tokenizer.pretokenizers[0].invert is true; only false is supported");
        }

        JsonElement pattern = JsonFile.Object(path, JsonFile.Required(path, split, "pre_tokenizer.pretokenizers[0]", "pattern"), "pre_tokenizer.pretokenizers[0].pattern");
        if (!pattern.TryGetProperty("Regex", out JsonElement regex))
        {
            throw new TokenizerFormatException(path, "pre_tokenizer.pretokenizers[0].pattern has no 'Regex'; only a regex split is supported");
        }

        JsonElement byteLevel = JsonFile.Object(path, steps[1], "pre_tokenizer.pretokenizers[1]");
        ExpectType(path, byteLevel, "pre_tokenizer.pretokenizers[1]", "ByteLevel");
        foreach (string flag in (ReadOnlySpan<string>)["add_prefix_space", "use_regex"])
        {
            if (byteLevel.TryGetProperty(flag, out JsonElement value) && value.ValueKind == JsonValueKind.True)
            {
                throw new TokenizerFormatException(path, $"pre_tokenizer.pretokenizers[1].{flag} is true; only false is supported");
            }
        }

        return JsonFile.String(path, regex, "pre_tokenizer.pretokenizers[0].pattern.Regex");
    }

    private static void ReadDecoder(string path, JsonElement root)
    {
        JsonElement decoder = JsonFile.Object(path, JsonFile.Required(path, root, "", "decoder"), "decoder");
        ExpectType(path, decoder, "decoder", "ByteLevel");
    }

    private static Dictionary<string, int> ReadVocabulary(string path, JsonElement model)
    {
        JsonElement vocab = JsonFile.Object(path, JsonFile.Required(path, model, "model", "vocab"), "model.vocab");
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var tokenById = new Dictionary<int, string>();
        foreach (JsonProperty entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0 || id > MaxTokenId)
            {
                throw new TokenizerFormatException(path, $"model.vocab[\"{entry.Name}\"] is {JsonFile.Describe(entry.Value)}; expected a token id from 0 to {MaxTokenId}");
            }

            // Decoding maps an id back to one token, and a repeated token would have two ids.
            if (!vocabulary.TryAdd(entry.Name, id))
            {
                throw new TokenizerFormatException(path, $"model.vocab lists the token \"{entry.Name}\" twice");
            }

            if (!tokenById.TryAdd(id, entry.Name))
            {
                throw new TokenizerFormatException(path, $"model.vocab gives id {id} to both \"{tokenById[id]}\" and \"{entry.Name}\"");
            }
        }

        // Every byte must be a token, or some text could not be encoded at all.
        foreach (char c in ByteLevelAlphabet.Characters)
        {
            if (!vocabulary.ContainsKey(c.ToString()))
            {
                throw new TokenizerFormatException(path, $"model.vocab has no token \"{c}\" (U+{(int)c:X4}) for a single byte; not a byte-level BPE vocabulary");
            }
        }

        return vocabulary;
    }

    private static List<string> ReadMerges(string path, JsonElement model, Dictionary<string, int> vocabulary)
    {
        JsonElement mergesElement = JsonFile.Required(path, model, "model", "merges");
        if (mergesElement.ValueKind != JsonValueKind.Array)
        {
            throw new TokenizerFormatException(path, $"model.merges is a {mergesElement.ValueKind}; expected an array");
        }

        var merges = new List<string>(mergesElement.GetArrayLength());
        int index = 0;
        foreach (JsonElement merge in mergesElement.EnumerateArray())
        {
            // Older files write "left right"; newer ones ["left", "right"].
            (string? left, string? right) = merge.ValueKind switch
            {
                JsonValueKind.String when merge.GetString()!.Split(' ') is [string l, string r] => (l, r),
                JsonValueKind.Array when merge.GetArrayLength() == 2 && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String
                    => (merge[0].GetString(), merge[1].GetString()),
                _ => (null, null),
            };

            if (left is null || right is null || left.Contains(' ') || right.Contains(' '))
            {
                throw new TokenizerFormatException(path, $"model.merges[{index}] is {merge.GetRawText()}; expected two tokens");
            }

            if (!vocabulary.ContainsKey(left) || !vocabulary.ContainsKey(right) || !vocabulary.ContainsKey(left + right))
            {
                throw new TokenizerFormatException(path, $"model.merges[{index}] is '{left} {right}'; its tokens or their merge are not in model.vocab");
            }

            merges.Add($"{left} {right}");
            index++;
        }

        return merges;
    }

    private static List<AddedToken> ReadAddedTokens(string path, JsonElement root, Dictionary<string, int> vocabulary)
    {
        var tokens = new List<AddedToken>();
        if (!root.TryGetProperty("added_tokens", out JsonElement array) || array.ValueKind == JsonValueKind.Null)
        {
            return tokens;
        }

        JsonFile.Array(path, array, "added_tokens");
        var contentById = new Dictionary<int, string>();
        var idByContent = new Dictionary<string, int>(StringComparer.Ordinal);
        Dictionary<int, string>? vocabularyById = null;
        int index = 0;
        foreach (JsonElement token in array.EnumerateArray())
        {
            string key = $"added_tokens[{index++}]";
            JsonFile.Object(path, token, key);
            string content = JsonFile.String(path, JsonFile.Required(path, token, key, "content"), key + ".content");
            if (content.Length == 0)
            {
                throw new TokenizerFormatException(path, $"{key}.content is empty; an added token needs text to match");
            }

            JsonElement idElement = JsonFile.Required(path, token, key, "id");
            if (idElement.ValueKind != JsonValueKind.Number || !idElement.TryGetInt32(out int id) || id < 0 || id > MaxTokenId)
            {
                throw new TokenizerFormatException(path, $"{key}.id is {JsonFile.Describe(idElement)}; expected a token id from 0 to {MaxTokenId}");
            }

            // One text, one id: the text is matched in prompts, the id decoded back to the text.
            if (!idByContent.TryAdd(content, id))
            {
                throw new TokenizerFormatException(path, $"{key} adds \"{content}\" again (it already has id {idByContent[content]})");
            }

            if (!contentById.TryAdd(id, content))
            {
                throw new TokenizerFormatException(path, $"{key} gives id {id} to \"{content}\", but it already belongs to the added token \"{contentById[id]}\"");
            }

            // An added token may repeat a vocabulary token (same text, same id), but not take another's id.
            vocabularyById ??= vocabulary.ToDictionary(entry => entry.Value, entry => entry.Key);
            if (vocabularyById.TryGetValue(id, out string? vocabularyToken) && vocabularyToken != content)
            {
                throw new TokenizerFormatException(path, $"{key} gives id {id} to \"{content}\", but model.vocab gives it to \"{vocabularyToken}\"");
            }

            if (vocabulary.TryGetValue(content, out int vocabularyId) && vocabularyId != id)
            {
                throw new TokenizerFormatException(path, $"{key} gives \"{content}\" id {id}, but model.vocab gives it id {vocabularyId}");
            }

            // These change how the text around a token is matched; Llama 3 sets none of them.
            foreach (string flag in (ReadOnlySpan<string>)["lstrip", "rstrip", "single_word"])
            {
                if (token.TryGetProperty(flag, out JsonElement value) && value.ValueKind == JsonValueKind.True)
                {
                    throw new TokenizerFormatException(path, $"{key}.{flag} is true for \"{content}\"; not supported");
                }
            }

            bool special = token.TryGetProperty("special", out JsonElement specialElement) && specialElement.ValueKind == JsonValueKind.True;
            tokens.Add(new AddedToken(content, id, special));
        }

        return tokens;
    }

    private static void RequireNull(string path, JsonElement parent, string key)
    {
        if (parent.TryGetProperty(key, out JsonElement value) && value.ValueKind != JsonValueKind.Null)
        {
            string type = value.ValueKind == JsonValueKind.Object && value.TryGetProperty("type", out JsonElement t) ? t.ToString() : value.ValueKind.ToString();
            throw new TokenizerFormatException(path, $"{key} is '{type}'; only null is supported");
        }
    }

    private static void RequireNullOrEmpty(string path, JsonElement model, string key)
    {
        if (model.TryGetProperty(key, out JsonElement value) && value.ValueKind != JsonValueKind.Null
            && !(value.ValueKind == JsonValueKind.String && value.GetString()!.Length == 0))
        {
            throw new TokenizerFormatException(path, $"model.{key} is {value.GetRawText()}; only null is supported");
        }
    }

    private static void ExpectType(string path, JsonElement element, string key, string expected) =>
        ExpectString(path, element, key, "type", expected);

    private static void ExpectString(string path, JsonElement element, string key, string property, string expected)
    {
        string actual = JsonFile.String(path, JsonFile.Required(path, element, key, property), $"{key}.{property}");
        if (actual != expected)
        {
            throw new TokenizerFormatException(path, $"{key}.{property} is '{actual}'; only '{expected}' is supported");
        }
    }
}
