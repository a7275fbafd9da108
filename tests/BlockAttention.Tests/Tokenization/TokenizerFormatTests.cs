using System.Text.Json.Nodes;
using BlockAttention.Llama.Tokenization;

namespace BlockAttention.Tests.Tokenization;

public sealed class TokenizerFormatTests : IDisposable
{
    private readonly TokenizerJsonBuilder _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void MinimalTokenizer_Loads_WithBothMergeSpellings()
    {
        var tokenizer = LlamaTokenizer.FromFile(_files.Write());

        tokenizer.Encode(" the<|eot_id|>").Should().Equal(258, 260);
        tokenizer.Decode([258, 260]).Should().Be(" the<|eot_id|>");
        tokenizer.VocabSize.Should().Be(261);
        tokenizer.BosTokenId.Should().BeNull("there is no tokenizer_config.json beside it");
    }

    [Fact]
    public void EncodeWithBos_WithoutConfig_Throws()
    {
        var tokenizer = LlamaTokenizer.FromFile(_files.Write());

        FluentActions.Invoking(() => tokenizer.Encode("x", addBos: true))
            .Should().Throw<InvalidOperationException>().WithMessage("*tokenizer_config.json*");
    }

    [Fact]
    public void Config_SetsBosAndEos_WrittenAsStringOrObject()
    {
        _files.WriteConfig("""{ "bos_token": "<|begin_of_text|>", "eos_token": { "content": "<|eot_id|>" } }""");

        var tokenizer = LlamaTokenizer.FromFile(_files.Write());

        tokenizer.BosTokenId.Should().Be(259);
        tokenizer.EosTokenId.Should().Be(260);
        tokenizer.Encode(" the", addBos: true).Should().Equal(259, 258);
    }

    [Fact]
    public void MissingFile_ThrowsFileNotFound_NamingThePath()
    {
        string path = Path.Combine(_files.Directory, "absent.json");

        FluentActions.Invoking(() => LlamaTokenizer.FromFile(path))
            .Should().Throw<FileNotFoundException>().Where(e => e.FileName == path && e.Message.Contains(path));
    }

    [Fact]
    public void InvalidJson_NamesTheFile()
    {
        File.WriteAllText(_files.TokenizerPath, """{ "model": { "type": "BPE", """);

        ExpectFormatError(_files.TokenizerPath, "not valid JSON");
    }

    [Theory]
    [InlineData("model.type", "Unigram")]
    [InlineData("model.type", "WordPiece")]
    public void UnsupportedModelType_NamesTheKeyAndValue(string key, string value)
    {
        _files.Json["model"]!["type"] = value;

        ExpectFormatError(_files.Write(), key, value);
    }

    [Fact]
    public void ByteFallback_IsRejected()
    {
        _files.Json["model"]!["byte_fallback"] = true;

        ExpectFormatError(_files.Write(), "model.byte_fallback");
    }

    [Fact]
    public void Normalizer_IsRejected()
    {
        _files.Json["normalizer"] = new JsonObject { ["type"] = "NFC" };

        ExpectFormatError(_files.Write(), "normalizer", "NFC");
    }

    [Fact]
    public void Gpt2StylePreTokenizer_IsRejected()
    {
        _files.Json["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["use_regex"] = true };

        ExpectFormatError(_files.Write(), "pre_tokenizer.type", "ByteLevel");
    }

    [Fact]
    public void SplitBehaviourOtherThanIsolated_IsRejected()
    {
        _files.Json["pre_tokenizer"]!["pretokenizers"]![0]!["behavior"] = "Removed";

        ExpectFormatError(_files.Write(), "pre_tokenizer.pretokenizers[0].behavior", "Removed");
    }

    [Fact]
    public void RegexDotNetCannotParse_IsRejected()
    {
        _files.Json["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"] = "(unclosed";

        ExpectFormatError(_files.Write(), "pre_tokenizer.pretokenizers[0].pattern.Regex");
    }

    [Fact]
    public void MissingVocab_NamesTheKey()
    {
        _files.Json["model"]!.AsObject().Remove("vocab");

        ExpectFormatError(_files.Write(), "'model.vocab' is missing");
    }

    [Fact]
    public void VocabWithoutEveryByte_IsRejected()
    {
        _files.Json["model"]!["vocab"]!.AsObject().Remove("a");

        ExpectFormatError(_files.Write(), "model.vocab", "\"a\"");
    }

    [Fact]
    public void MergeOfUnknownTokens_NamesTheMerge()
    {
        _files.Json["model"]!["merges"]!.AsArray().Add("Ġthe Ġt");

        ExpectFormatError(_files.Write(), "model.merges[3]", "Ġthe Ġt");
    }

    [Fact]
    public void AddedTokenWithLstrip_IsRejected()
    {
        _files.Json["added_tokens"]![1]!["lstrip"] = true;

        ExpectFormatError(_files.Write(), "added_tokens[1].lstrip", "<|eot_id|>");
    }

    [Fact]
    public void ConfigNamingAnUnknownBosToken_NamesTheConfigFile()
    {
        _files.WriteConfig("""{ "bos_token": "<s>" }""");

        ExpectConfigError(_files.Write(), "bos_token", "<s>");
    }

    [Fact]
    public void InvalidConfigJson_NamesTheConfigFile()
    {
        _files.WriteConfig("{ nope");

        ExpectConfigError(_files.Write(), "not valid JSON");
    }

    private static void ExpectFormatError(string path, params string[] fragments) =>
        ExpectError(path, path, fragments);

    private void ExpectConfigError(string tokenizerPath, params string[] fragments) =>
        ExpectError(tokenizerPath, _files.ConfigPath, fragments);

    private static void ExpectError(string tokenizerPath, string faultyFile, string[] fragments)
    {
        TokenizerFormatException error = FluentActions.Invoking(() => LlamaTokenizer.FromFile(tokenizerPath))
            .Should().Throw<TokenizerFormatException>().Which;

        error.FilePath.Should().Be(faultyFile);
        error.Message.Should().StartWith(faultyFile);
        foreach (string fragment in fragments)
        {
            error.Message.Should().Contain(fragment);
        }
    }
}
