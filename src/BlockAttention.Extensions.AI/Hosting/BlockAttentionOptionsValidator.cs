using System.Text.RegularExpressions;
using BlockAttention.Caching;
using Microsoft.Extensions.Options;

namespace BlockAttention.Hosting;

/// <summary>Checks <see cref="BlockAttentionOptions"/>; each failure names the setting as it is written in configuration.</summary>
internal sealed partial class BlockAttentionOptionsValidator(string sectionPath, IEnumerable<IKvBlockStoreTierFactory> tierFactories) : IValidateOptions<BlockAttentionOptions>
{
    public ValidateOptionsResult Validate(string? name, BlockAttentionOptions options)
    {
        var failures = new List<string>();
        string Key(string setting) => sectionPath.Length == 0 ? setting : $"{sectionPath}:{setting}";

        if (string.IsNullOrWhiteSpace(options.Model))
        {
            failures.Add($"{Key("Model")} is required: the checkpoint folder (with config.json)");
        }
        else if (!Directory.Exists(options.Model))
        {
            failures.Add($"{Key("Model")}: the folder '{options.Model}' does not exist");
        }
        else if (!File.Exists(Path.Combine(options.Model, "config.json")))
        {
            failures.Add($"{Key("Model")}: '{options.Model}' has no config.json; it must be a Hugging Face checkpoint folder");
        }

        if (options.Device is null || !DevicePattern().IsMatch(options.Device))
        {
            failures.Add($"{Key("Device")} must be cpu, cuda or cuda:N, got '{options.Device}'");
        }

        if (!Enum.IsDefined(options.DType))
        {
            failures.Add($"{Key("DType")} must be float32, bfloat16 or float16, got '{options.DType}'");
        }

        if (BlockStoreFactory.Validate(options.Store, tierFactories) is { } storeError)
        {
            failures.Add($"{Key("Store")}: {storeError}");
        }

        if (options.StoreMaxBytes is <= 0)
        {
            failures.Add($"{Key("StoreMaxBytes")} must be greater than 0, got {options.StoreMaxBytes}");
        }

        if (options.StoreMaxTokens is <= 0)
        {
            failures.Add($"{Key("StoreMaxTokens")} must be greater than 0, got {options.StoreMaxTokens}");
        }

        if (options.StoreMaxBytes is not null && options.StoreMaxTokens is not null)
        {
            failures.Add($"{Key("StoreMaxBytes")} and {Key("StoreMaxTokens")} are both set; give one of them");
        }

        if (options.StoreFileMaxBytes <= 0)
        {
            failures.Add($"{Key("StoreFileMaxBytes")} must be greater than 0, got {options.StoreFileMaxBytes}");
        }

        if (options.IdleCaches is < 0 or > 64)
        {
            failures.Add($"{Key("IdleCaches")} must be between 0 and 64, got {options.IdleCaches}");
        }

        if (options.MaxBatchSize is < 1 or > 4096)
        {
            failures.Add($"{Key("MaxBatchSize")} must be between 1 and 4096, got {options.MaxBatchSize}");
        }

        if (options.MaxQueuedRequests is < 0 or > 1_000_000)
        {
            failures.Add($"{Key("MaxQueuedRequests")} must be between 0 and 1000000, got {options.MaxQueuedRequests}");
        }

        if (options.PrefillChunkTokens < 1)
        {
            failures.Add($"{Key("PrefillChunkTokens")} must be at least 1, got {options.PrefillChunkTokens}");
        }

        if (options.StepThreads is < 1 or > 4096)
        {
            failures.Add($"{Key("StepThreads")} must be between 1 and 4096, got {options.StepThreads}");
        }

        if (options.MaxCacheBytes is <= 0)
        {
            failures.Add($"{Key("MaxCacheBytes")} must be greater than 0, got {options.MaxCacheBytes}");
        }

        if (options.ChatFormat is null
            || (!string.Equals(options.ChatFormat, "auto", StringComparison.OrdinalIgnoreCase)
                && !Prompts.ChatFormat.All.Any(f => string.Equals(f.Name, options.ChatFormat, StringComparison.OrdinalIgnoreCase))))
        {
            failures.Add($"{Key("ChatFormat")} must be auto, {string.Join(" or ", Prompts.ChatFormat.All.Select(f => f.Name))}, got '{options.ChatFormat}'");
        }

        if (options.DefaultMaxOutputTokens < 1)
        {
            failures.Add($"{Key("DefaultMaxOutputTokens")} must be at least 1, got {options.DefaultMaxOutputTokens}");
        }

        if (!Enum.IsDefined(options.DefaultMode))
        {
            failures.Add($"{Key("DefaultMode")} must be Block, Full or BlockOnePass, got '{options.DefaultMode}'");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    [GeneratedRegex(@"^(cpu|cuda(:[0-9]{1,3})?)$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex DevicePattern();
}
