using System.Text.Json.Nodes;
using BlockAttention.Llama.Tokenization;
using BlockAttention.Tests.Tokenization;

namespace BlockAttention.Tests.Inputs;

/// <summary>tokenizer.json values of the wrong kind or repeated: a <see cref="TokenizerFormatException"/> naming the file and key, never an "unexpected" error.</summary>
public sealed class HostileTokenizerJsonTests : IDisposable
{
    private readonly TokenizerJsonBuilder _files = new();

    public void Dispose() => _files.Dispose();

    [Theory]
    [InlineData("{}", "added_tokens is an Object")]
    [InlineData("\"eot\"", "added_tokens is \"eot\"")]
    [InlineData("42", "added_tokens is 42")]
    [InlineData("true", "added_tokens is true")]
    public void Added_tokens_of_the_wrong_kind_are_named(string value, string message)
    {
        _files.Json["added_tokens"] = JsonNode.Parse(value);

        Expect(message);
    }

    [Fact]
    public void A_repeated_added_token_is_named()
    {
        Added().Add(new JsonObject { ["id"] = 261, ["content"] = "<|eot_id|>", ["special"] = true });

        Expect("added_tokens[2] adds \"<|eot_id|>\" again");
    }

    [Fact]
    public void Two_added_tokens_with_one_id_are_named()
    {
        Added().Add(new JsonObject { ["id"] = 260, ["content"] = "<|other|>", ["special"] = true });

        Expect("added_tokens[2] gives id 260 to \"<|other|>\"");
    }

    [Fact]
    public void An_added_token_taking_a_vocabulary_id_is_named()
    {
        Added().Add(new JsonObject { ["id"] = 258, ["content"] = "<|other|>", ["special"] = true });

        Expect("model.vocab gives it to \"Ġthe\"");
    }

    [Fact]
    public void An_added_token_repeating_a_vocabulary_token_with_its_id_is_accepted()
    {
        Added().Add(new JsonObject { ["id"] = 258, ["content"] = "Ġthe", ["special"] = false });

        LlamaTokenizer.FromFile(_files.Write()).VocabSize.Should().Be(261);
    }

    [Fact]
    public void An_empty_added_token_is_named()
    {
        Added().Add(new JsonObject { ["id"] = 300, ["content"] = "", ["special"] = true });

        Expect("added_tokens[2].content is empty");
    }

    [Fact]
    public void Two_vocabulary_tokens_with_one_id_are_named()
    {
        _files.Json["model"]!["vocab"]!["Ġthe"] = 257;

        Expect("model.vocab gives id 257 to both \"he\" and \"Ġthe\"");
    }

    [Fact]
    public void A_vocabulary_token_listed_twice_is_named()
    {
        string json = _files.Json.ToJsonString().Replace("\"\\u0120the\":258", "\"\\u0120the\":258,\"\\u0120the\":259", StringComparison.Ordinal);
        json.Should().Contain("\"\\u0120the\":259");
        File.WriteAllText(_files.TokenizerPath, json);

        ExpectFrom(_files.TokenizerPath, "lists the token \"Ġthe\" twice");
    }

    [Theory]
    [InlineData(2147483647L)]
    [InlineData(-1L)]
    public void A_token_id_out_of_range_is_named(long id)
    {
        Added().Add(new JsonObject { ["id"] = id, ["content"] = "<|big|>", ["special"] = true });

        Expect($"added_tokens[2].id is {id}");
    }

    [Fact]
    public void A_lone_surrogate_escape_names_the_file()
    {
        string json = _files.Json.ToJsonString().Replace("\\u003C|eot_id|\\u003E", "\\udc00", StringComparison.Ordinal);
        json.Should().Contain("\\udc00");
        File.WriteAllText(_files.TokenizerPath, json);

        ExpectFrom(_files.TokenizerPath, "lone surrogate");
    }

    private JsonArray Added() => _files.Json["added_tokens"]!.AsArray();

    private void Expect(string message) => ExpectFrom(_files.Write(), message);

    private static void ExpectFrom(string path, string message)
    {
        var act = () => LlamaTokenizer.FromFile(path);

        act.Should().Throw<TokenizerFormatException>()
            .Where(e => e.FilePath == path && e.Message.Contains(message), $"the message should contain: {message}");
    }
}
