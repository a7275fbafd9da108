using BlockAttention.Text;

namespace BlockAttention.Training.Data;

/// <summary>
/// Tokenizes training examples as the reference does: each block on its own (no BOS or EOS), the
/// response ending with the end-of-text token, labels ignored over the prompt; drops examples
/// whose full-attention form is too long; emits a block-attention copy (with the
/// <see cref="TrainingSetOptions.BlockPrefix"/> in front of block 0) and a full-attention copy.
/// </summary>
public sealed class TrainingSetBuilder(ITextTokenizer tokenizer, TrainingSetOptions? options = null)
{
    private readonly TrainingSetOptions _options = Validated(options ?? new TrainingSetOptions());

    /// <summary>Builds the set from <paramref name="examples"/>.</summary>
    public TrainingSet Build(IEnumerable<TrainingText> examples)
    {
        ArgumentNullException.ThrowIfNull(examples);
        var samples = new List<TrainingSample>();
        int count = 0, tooLong = 0, emptyResponse = 0;
        foreach (var example in examples)
        {
            count++;
            var result = Tokenize(example);
            if (result is null)
            {
                emptyResponse++;
                continue;
            }

            var (full, block) = result.Value;
            if (full.Length > _options.MaxLength)
            {
                tooLong++;
                continue;
            }

            if (_options.IncludeBlockCopy)
            {
                samples.Add(block);
            }

            if (_options.IncludeFullCopy)
            {
                samples.Add(full);
            }
        }

        if (_options.ShuffleSeed is { } seed)
        {
            SeededShuffle.Shuffle(samples, seed);
        }

        return new TrainingSet(samples, count, tooLong, emptyResponse);
    }

    /// <summary>The full-attention and block-attention samples of one example, or null when its response has no token.</summary>
    public (TrainingSample Full, TrainingSample Block)? Tokenize(TrainingText example)
    {
        ArgumentNullException.ThrowIfNull(example);
        if (example.Blocks.Count == 0)
        {
            throw new ArgumentException("an example needs at least one block", nameof(example));
        }

        var blocks = example.Blocks.Select(b => tokenizer.Encode(b)).ToList();
        string responseText = example.Response.EndsWith(_options.EndOfText, StringComparison.Ordinal) ? example.Response : example.Response + _options.EndOfText;
        var response = tokenizer.Encode(responseText);
        if (response.Count == 0)
        {
            return null;
        }

        var full = Assemble(blocks, response, blockAttention: false);
        var prefixed = new List<IReadOnlyList<int>>(blocks);
        if (_options.BlockPrefix.Length > 0)
        {
            // The reference writes the prefix as text in front of block 0, so it counts into block 0.
            prefixed[0] = tokenizer.Encode(_options.BlockPrefix + example.Blocks[0]);
        }

        return (full, Assemble(prefixed, response, blockAttention: true));
    }

    private static TrainingSample Assemble(List<IReadOnlyList<int>> blocks, IReadOnlyList<int> response, bool blockAttention)
    {
        long promptLength = blocks.Sum(b => (long)b.Count);
        long total = promptLength + response.Count;
        if (total > Array.MaxLength)
        {
            throw new ArgumentException($"a sample of {total} tokens is too long to hold");
        }

        var ids = new int[total];
        var labels = new int[total];
        int at = 0;
        foreach (var block in blocks)
        {
            foreach (int id in block)
            {
                ids[at] = id;
                labels[at++] = TrainingSample.IgnoreLabel;
            }
        }

        foreach (int id in response)
        {
            ids[at] = id;
            labels[at++] = id;
        }

        var local = blocks.Take(blocks.Count - 1).Select(b => b.Count).ToArray();
        return new TrainingSample(ids, labels, local, blockAttention);
    }

    private static TrainingSetOptions Validated(TrainingSetOptions options)
    {
        options.Validate();
        return options;
    }
}
