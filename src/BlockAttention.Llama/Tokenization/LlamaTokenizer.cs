using System.Buffers;
using System.Collections.ObjectModel;
using System.Text;
using System.Text.RegularExpressions;
using BlockAttention.Llama.Checkpoints;
using BlockAttention.Text;
using Microsoft.ML.Tokenizers;

namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// The Llama 3 tokenizer (byte-level BPE) built from a Hugging Face <c>tokenizer.json</c>, producing the same
/// ids and decoded text as the Hugging Face <c>tokenizers</c> library.
/// </summary>
/// <remarks>
/// <para>
/// Encoding is done here as the reference does it: splitting the text (added tokens, then the file's regex over
/// code points rather than UTF-16 units), <c>ignore_merges</c> (a piece that is itself a vocabulary token maps
/// to that token; merging would give other ids for several hundred Llama 3 tokens, such as " việc"), and BPE
/// merging with a priority queue, so that encoding time grows with the length of the text times its logarithm
/// even when the whole text is one piece (a long run of one letter, of newlines or of emoji). Byte-level
/// decoding comes from <c>Microsoft.ML.Tokenizers</c>' <see cref="BpeTokenizer"/>.
/// </para>
/// <para>Instances are immutable and safe to share between threads.</para>
/// </remarks>
public sealed class LlamaTokenizer : ITextTokenizer
{
    // A piece this short is byte-level spelled on the stack; a longer one (rare: a long run of spaces or
    // letters) uses a pooled buffer.
    private const int StackPieceBytes = 256;

    private readonly BpeTokenizer _decoder;
    private readonly BytePairEncoder _encoder;
    private readonly PreTokenSplitter _splitter;
    private readonly Dictionary<string, int> _vocabulary;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabularyBySpan;
    private readonly Dictionary<string, int> _addedTokens;
    private readonly bool _ignoreMerges;
    private readonly int _maxInputCharacters;

    private LlamaTokenizer(string tokenizerJsonPath, TokenizerDefinition definition, BpeTokenizer decoder, Regex split, int? bosTokenId, int? eosTokenId,
        LlamaTokenizerOptions options)
    {
        _decoder = decoder;
        _encoder = new BytePairEncoder(definition.Vocabulary, definition.Merges);
        _vocabulary = definition.Vocabulary;
        _vocabularyBySpan = _vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        _ignoreMerges = definition.IgnoreMerges;
        _maxInputCharacters = options.MaxInputCharacters;
        _addedTokens = definition.AddedTokens.ToDictionary(t => t.Content, t => t.Id, StringComparer.Ordinal);
        _splitter = new PreTokenSplitter(split, new AddedTokenMatcher(_addedTokens), tokenizerJsonPath);
        SpecialTokens = new ReadOnlyDictionary<string, int>(
            definition.AddedTokens.Where(t => t.Special).ToDictionary(t => t.Content, t => t.Id, StringComparer.Ordinal));
        VocabSize = Math.Max(_vocabulary.Values.Max(), definition.AddedTokens.Count == 0 ? -1 : definition.AddedTokens.Max(t => t.Id)) + 1;
        BosTokenId = bosTokenId;
        EosTokenId = eosTokenId;
    }

    /// <summary>Gets the id of the beginning-of-text token named by <c>tokenizer_config.json</c>, if it was found.</summary>
    public int? BosTokenId { get; }

    /// <summary>Gets the id of the end-of-sequence token named by <c>tokenizer_config.json</c>, if it was found.</summary>
    public int? EosTokenId { get; }

    /// <summary>Gets the special tokens (added tokens marked <c>special</c>, such as <c>&lt;|eot_id|&gt;</c>) and their ids.</summary>
    public IReadOnlyDictionary<string, int> SpecialTokens { get; }

    /// <summary>Gets the number of token ids: one more than the largest id of the vocabulary and the added tokens.</summary>
    public int VocabSize { get; }

    /// <summary>
    /// Loads a tokenizer from a Hugging Face <c>tokenizer.json</c>. When a <c>tokenizer_config.json</c> lies
    /// beside it, its <c>bos_token</c> and <c>eos_token</c> set <see cref="BosTokenId"/> and <see cref="EosTokenId"/>.
    /// </summary>
    /// <param name="tokenizerJsonPath">The path of <c>tokenizer.json</c>.</param>
    /// <param name="options">Limits on the text to encode; null for the defaults.</param>
    /// <param name="limits">The largest <c>tokenizer.json</c> and <c>tokenizer_config.json</c> accepted (default: <see cref="CheckpointFileLimits.Default"/>).</param>
    /// <returns>The tokenizer.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An option is out of range.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="BlockAttention.IO.InputFileException">A file is not a regular file (a pipe, a device) or is over its limit.</exception>
    /// <exception cref="TokenizerFormatException">
    /// A file is not valid JSON, lacks a required key, or describes a tokenizer other than byte-level BPE with a
    /// regex split (the message names the file and the key).
    /// </exception>
    public static LlamaTokenizer FromFile(string tokenizerJsonPath, LlamaTokenizerOptions? options = null, CheckpointFileLimits? limits = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(tokenizerJsonPath);
        options ??= new LlamaTokenizerOptions();
        options.Validate();

        TokenizerDefinition definition = TokenizerJsonReader.Read(tokenizerJsonPath, limits);
        Regex split = CreateSplitRegex(tokenizerJsonPath, definition.SplitPattern, options.RegexMatchTimeout);
        var addedTokens = definition.AddedTokens.ToDictionary(t => t.Content, t => t.Id, StringComparer.Ordinal);

        // Only for decoding (added tokens decode to their text); encoding is BytePairEncoder's.
        var decoder = BpeTokenizer.Create(new BpeOptions(definition.Vocabulary)
        {
            Merges = definition.Merges,
            ByteLevel = true,
            SpecialTokens = addedTokens,
        });

        (int? bos, int? eos) = ReadConfig(tokenizerJsonPath, definition, addedTokens, limits);
        return new LlamaTokenizer(tokenizerJsonPath, definition, decoder, split, bos, eos, options);
    }

    /// <summary>
    /// Gets the id of <paramref name="token"/>: an added token by its text (<c>&lt;|eot_id|&gt;</c>), or a
    /// vocabulary token in its byte-level spelling (<c>Ġthe</c> for " the").
    /// </summary>
    /// <param name="token">The token text.</param>
    /// <param name="id">The id, when found.</param>
    /// <returns><see langword="true"/> when the token exists.</returns>
    public bool TryGetTokenId(string token, out int id)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _addedTokens.TryGetValue(token, out id) || _vocabulary.TryGetValue(token, out id);
    }

    /// <inheritdoc />
    IReadOnlyList<int> ITextTokenizer.Encode(string text) => Encode(text, addBos: false);

    /// <summary>
    /// Encodes <paramref name="text"/>. Special-token text inside it (such as <c>&lt;|eot_id|&gt;</c>) maps to
    /// its single id; nothing is added at the end.
    /// </summary>
    /// <param name="text">The text to encode; may be empty.</param>
    /// <param name="addBos">Whether to start with <see cref="BosTokenId"/>.</param>
    /// <returns>The token ids.</returns>
    /// <exception cref="ArgumentException">
    /// <paramref name="text"/> is longer than <see cref="LlamaTokenizerOptions.MaxInputCharacters"/> (checked before any work).
    /// </exception>
    /// <exception cref="InvalidOperationException"><paramref name="addBos"/> is set but the tokenizer has no BOS token.</exception>
    /// <exception cref="TokenizerFormatException">The pre-tokenizer regex of <c>tokenizer.json</c> took longer than <see cref="LlamaTokenizerOptions.RegexMatchTimeout"/> to find a match.</exception>
    public IReadOnlyList<int> Encode(string text, bool addBos = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length > _maxInputCharacters)
        {
            throw new ArgumentException(
                $"the text has {text.Length} characters, more than the tokenizer's limit of {_maxInputCharacters} ({nameof(LlamaTokenizerOptions)}.{nameof(LlamaTokenizerOptions.MaxInputCharacters)})",
                nameof(text));
        }

        var ids = new List<int>(text.Length / 3 + 2);
        if (addBos)
        {
            ids.Add(BosTokenId ?? throw new InvalidOperationException(
                $"This tokenizer has no BOS token: no {TokenizerConfigReader.FileName} with a bos_token was found beside its tokenizer.json."));
        }

        var scratch = new BytePairEncoder.Scratch();
        foreach (PreToken piece in _splitter.Split(text))
        {
            if (piece.IsAddedToken)
            {
                ids.Add(piece.AddedTokenId);
            }
            else
            {
                EncodePiece(text.AsSpan(piece.Offset, piece.Length), ids, scratch);
            }
        }

        return ids;
    }

    /// <summary>
    /// Decodes <paramref name="ids"/> as the reference does: special tokens as their text, bytes that are not
    /// valid UTF-8 as U+FFFD, ids outside the vocabulary skipped.
    /// </summary>
    /// <param name="ids">The token ids.</param>
    /// <returns>The decoded text.</returns>
    public string Decode(IReadOnlyList<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return ids.Count == 0 ? string.Empty : _decoder.Decode(ids, considerSpecialTokens: true);
    }

    private void EncodePiece(ReadOnlySpan<char> piece, List<int> ids, BytePairEncoder.Scratch scratch)
    {
        // A lone surrogate becomes U+FFFD's bytes, as the reference's input (UTF-8) cannot hold one.
        int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[]? rentedBytes = null;
        Span<byte> buffer = maxBytes <= StackPieceBytes ? stackalloc byte[StackPieceBytes] : (rentedBytes = ArrayPool<byte>.Shared.Rent(maxBytes));
        try
        {
            ReadOnlySpan<byte> bytes = buffer[..Encoding.UTF8.GetBytes(piece, buffer)];
            if (_ignoreMerges && TryGetWholePieceId(bytes, out int id))
            {
                ids.Add(id);
                return;
            }

            _encoder.Encode(bytes, ids, scratch);
        }
        finally
        {
            if (rentedBytes is not null)
            {
                ArrayPool<byte>.Shared.Return(rentedBytes);
            }
        }
    }

    private bool TryGetWholePieceId(ReadOnlySpan<byte> bytes, out int id)
    {
        char[]? rented = null;
        Span<char> spelled = bytes.Length <= StackPieceBytes ? stackalloc char[StackPieceBytes] : (rented = ArrayPool<char>.Shared.Rent(bytes.Length));
        try
        {
            for (int i = 0; i < bytes.Length; i++)
            {
                spelled[i] = ByteLevelAlphabet.ToChar(bytes[i]);
            }

            return _vocabularyBySpan.TryGetValue(spelled[..bytes.Length], out id);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    private static Regex CreateSplitRegex(string path, string pattern, TimeSpan matchTimeout)
    {
        try
        {
            // Compiled: every encode runs it over the whole text. CultureInvariant: the (?i:'s|'t|...) contractions
            // must not follow the current culture's casing rules. Not NonBacktracking, although it would guarantee
            // linear time: it cannot run lookarounds, which real patterns use (Llama 3's \s+(?!\S)), and it does
            // not always find the matches the backtracking engine finds (a leading optional such as " ?" can
            // lose a match). The timeout stops a pattern that backtracks catastrophically.
            return new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant, matchTimeout);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerFormatException(path, $"pre_tokenizer.pretokenizers[0].pattern.Regex is not a pattern .NET can run: {e.Message}", e);
        }
    }

    private static (int? Bos, int? Eos) ReadConfig(string tokenizerJsonPath, TokenizerDefinition definition, Dictionary<string, int> addedTokens, CheckpointFileLimits? limits)
    {
        string configPath = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(tokenizerJsonPath))!, TokenizerConfigReader.FileName);
        if (!File.Exists(configPath))
        {
            return (null, null);
        }

        (string? bosToken, string? eosToken) = TokenizerConfigReader.Read(configPath, limits);
        return (Resolve("bos_token", bosToken), Resolve("eos_token", eosToken));

        int? Resolve(string key, string? token)
        {
            if (token is null)
            {
                return null;
            }

            if (addedTokens.TryGetValue(token, out int id) || definition.Vocabulary.TryGetValue(token, out id))
            {
                return id;
            }

            throw new TokenizerFormatException(configPath, $"{key} is '{token}', which is not a token of {tokenizerJsonPath}");
        }
    }
}
