using BlockAttention.Runtime;
using System.Diagnostics;
using System.Text.Json;
using BlockAttention.Training.Data;
using BlockAttention.Training.Modeling;
using BlockAttention.Training.Optimization;
using static TorchSharp.torch;

namespace BlockAttention.Training;

/// <summary>
/// Fine-tunes a <see cref="TrainableLlama"/> on prepared samples: per update, <see cref="TrainerOptions.BatchSize"/>
/// samples (each with its own mask, <see cref="TrainerOptions.MicroBatchSize"/> of them per padded
/// forward pass) contribute their summed response-token loss, divided by the batch's response tokens; then gradient clipping, AdamW, warm-up + cosine schedule. Saves
/// resumable checkpoints: the model in the Hugging Face layout plus <c>optimizer.safetensors</c>
/// and <c>trainer_state.json</c> (and, under LoRA, <c>adapters.safetensors</c>; only the adapters
/// train and the saved model holds them merged).
/// </summary>
public sealed class Trainer
{
    private const string OptimizerFile = "optimizer.safetensors";
    private const string StateFile = "trainer_state.json";
    private const string AdaptersFile = "adapters.safetensors";

    private readonly TrainableLlama _model;
    private readonly TrainerOptions _options;

    /// <summary>A trainer of <paramref name="model"/> with <paramref name="options"/>.</summary>
    public Trainer(TrainableLlama model, TrainerOptions options)
    {
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _options.Validate();
        _model.ComputeDType = options.ComputeDType;
        if (options.Lora is { } lora && model.Lora is null)
        {
            model.EnableLora(lora);
        }
    }

    /// <summary>
    /// Trains on <paramref name="samples"/>, reporting to <paramref name="progress"/>, saving into
    /// <paramref name="outputDirectory"/>; resumes from its checkpoint when one is there.
    /// Returns the last evaluation loss (or NaN without an evaluation set).
    /// </summary>
    public double Train(IReadOnlyList<TrainingSample> samples, IReadOnlyList<TrainingSample>? evaluation, string outputDirectory,
        Action<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Count == 0)
        {
            throw new ArgumentException("no training samples", nameof(samples));
        }

        var schedule = new LearningRateSchedule(_options.LearningRate, (long)Math.Ceiling(_options.WarmupRatio * _options.Steps), _options.Steps);
        using var optimizer = new AdamW(_model.TrainableParameters, weightDecay: _options.WeightDecay);
        long start = Resume(outputDirectory, optimizer);
        var order = Enumerable.Range(0, samples.Count).ToList();
        int epoch = -1;
        double lossSum = 0, lastEval = double.NaN, gradNorm = 0;
        long lossTokens = 0, tokens = 0;
        var clock = Stopwatch.StartNew();
        var sinceReport = Stopwatch.StartNew();
        for (long step = start; step < _options.Steps; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = new List<TrainingSample>(_options.BatchSize);
            for (int i = 0; i < _options.BatchSize; i++)
            {
                long index = step * _options.BatchSize + i;
                int e = (int)(index / samples.Count);
                if (e != epoch)
                {
                    // Each epoch's order is a function of the seed and the epoch, so a resumed run sees the same order.
                    epoch = e;
                    order = Enumerable.Range(0, samples.Count).ToList();
                    SeededShuffle.Shuffle(order, unchecked(_options.Seed + epoch));
                }

                batch.Add(samples[order[(int)(index % samples.Count)]]);
            }

            int batchLossTokens = Math.Max(1, batch.Sum(s => s.LossTokens));
            foreach (var p in _model.TrainableParameters.Values)
            {
                p.grad?.zero_();
            }

            foreach (var chunk in batch.Chunk(_options.MicroBatchSize))
            {
                using var scope = NewDisposeScope();
                var loss = _model.LossSum(chunk);
                lossSum += loss.item<float>();
                using var divisor = Scalars.Of(batchLossTokens);
                loss.div(divisor).backward();
                tokens += chunk.Sum(s => (long)s.Length);
            }

            lossTokens += batchLossTokens;
            gradNorm = ClipGradients(_options.MaxGradNorm);
            double lr = schedule.At(step);
            optimizer.Step(lr);
            long done = step + 1;
            double? evalLoss = null;
            if (evaluation is { Count: > 0 } && ((_options.EvalEvery > 0 && done % _options.EvalEvery == 0) || done == _options.Steps))
            {
                evalLoss = lastEval = Evaluate(evaluation);
            }

            if (_options.SaveEvery > 0 && done % _options.SaveEvery == 0 && done != _options.Steps)
            {
                Save(outputDirectory, optimizer, done);
            }

            if (done % _options.LogEvery == 0 || done == _options.Steps || evalLoss is not null)
            {
                double seconds = Math.Max(1e-9, sinceReport.Elapsed.TotalSeconds);
                double perStep = clock.Elapsed.TotalSeconds / (done - start);
                progress?.Invoke(new TrainingProgress(done, _options.Steps, lossSum / Math.Max(1, lossTokens), lr, gradNorm, tokens / seconds,
                    TimeSpan.FromSeconds(perStep * (_options.Steps - done)), evalLoss));
                lossSum = 0;
                lossTokens = 0;
                tokens = 0;
                sinceReport.Restart();
            }
        }

        Save(outputDirectory, optimizer, _options.Steps);
        return lastEval;
    }

    /// <summary>Mean loss per response token over <paramref name="samples"/>, without gradients.</summary>
    public double Evaluate(IReadOnlyList<TrainingSample> samples)
    {
        ArgumentNullException.ThrowIfNull(samples);
        using var noGrad = no_grad();
        double sum = 0;
        long count = 0;
        foreach (var chunk in samples.Chunk(_options.MicroBatchSize))
        {
            using var scope = NewDisposeScope();
            sum += _model.LossSum(chunk).item<float>();
            count += chunk.Sum(s => s.LossTokens);
        }

        return sum / Math.Max(1, count);
    }

    // Scales the gradients so their global L2 norm is at most maxNorm (as torch.nn.utils.clip_grad_norm_); returns the norm before.
    private double ClipGradients(double maxNorm)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var grads = _model.TrainableParameters.Values.Select(p => p.grad).OfType<Tensor>().ToList();
        if (grads.Count == 0)
        {
            return 0;
        }

        double norm = stack(grads.Select(g => g.norm()).ToArray()).norm().item<float>();
        if (maxNorm > 0 && norm > maxNorm)
        {
            using var factor = Scalars.Of(maxNorm / (norm + 1e-6));
            foreach (var g in grads)
            {
                g.mul_(factor);
            }
        }

        return norm;
    }

    private void Save(string directory, AdamW optimizer, long step)
    {
        CheckpointSaver.Save(_model, directory, _options.SaveDType);
        SafetensorsWriter.Write(Path.Combine(directory, OptimizerFile), optimizer.State);
        // Under LoRA the adapters, which resuming needs (the checkpoint holds them merged into the weights).
        if (_model.Lora is not null)
        {
            SafetensorsWriter.Write(Path.Combine(directory, AdaptersFile), _model.Adapters);
        }

        // Full-precision weights too when the model is saved in a narrower dtype, so resuming loses nothing.
        else if (_options.SaveDType != ScalarType.Float32)
        {
            SafetensorsWriter.Write(Path.Combine(directory, "master.safetensors"), _model.Parameters);
        }

        File.WriteAllText(Path.Combine(directory, StateFile), JsonSerializer.Serialize(new TrainerState(step, optimizer.Steps, _options.Steps, _options.BatchSize, _options.Seed)));
    }

    private long Resume(string directory, AdamW optimizer)
    {
        string statePath = Path.Combine(directory, StateFile);
        if (!File.Exists(statePath))
        {
            return 0;
        }

        var state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(statePath))
            ?? throw new TrainingDataException(statePath, 0, "not a trainer state");
        if (state.BatchSize != _options.BatchSize || state.Seed != _options.Seed)
        {
            throw new TrainingDataException(statePath, 0, $"the checkpoint was trained with batch size {state.BatchSize} and seed {state.Seed}; resume with the same");
        }

        string weights = _model.Lora is not null ? AdaptersFile
            : File.Exists(Path.Combine(directory, "master.safetensors")) ? "master.safetensors" : "model.safetensors";
        if (!File.Exists(Path.Combine(directory, weights)))
        {
            throw new TrainingDataException(statePath, 0, $"the checkpoint has no {weights} to resume from (LoRA and full fine-tuning checkpoints do not resume each other)");
        }

        LoadInto(Path.Combine(directory, weights), (name, value) =>
        {
            using var noGrad = no_grad();
            if (!_model.TrainableParameters.TryGetValue(name, out var target) || !target.shape.SequenceEqual(value.shape))
            {
                throw new TrainingDataException(Path.Combine(directory, weights), 0, $"tensor '{name}' does not match the model being trained");
            }

            target.copy_(value);
        });
        LoadInto(Path.Combine(directory, OptimizerFile), optimizer.Restore);
        optimizer.Steps = state.OptimizerSteps;
        return state.Step;
    }

    private void LoadInto(string path, Action<string, Tensor> apply)
    {
        using var file = Llama.Checkpoints.SafetensorsFile.Open(path);
        foreach (string name in file.TensorNames)
        {
            var info = file.GetInfo(name);
            var stored = info.DType switch
            {
                Llama.Checkpoints.SafetensorsDType.F32 => ScalarType.Float32,
                Llama.Checkpoints.SafetensorsDType.BF16 => ScalarType.BFloat16,
                _ => throw new TrainingDataException(path, 0, $"tensor '{name}' has unsupported dtype {info.DType}"),
            };
            using var cpu = empty(info.Shape.ToArray(), stored);
            file.ReadInto(name, cpu.bytes);
            using var value = cpu.to(ScalarType.Float32, _model.Device);
            apply(name, value);
        }
    }

    private sealed record TrainerState(long Step, long OptimizerSteps, long TotalSteps, int BatchSize, int Seed);
}
