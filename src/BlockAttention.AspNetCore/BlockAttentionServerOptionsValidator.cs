using Microsoft.Extensions.Options;

namespace BlockAttention.AspNetCore;

/// <summary>Checks <see cref="BlockAttentionServerOptions"/>; each failure names the setting as it is written in configuration.</summary>
internal sealed class BlockAttentionServerOptionsValidator : IValidateOptions<BlockAttentionServerOptions>
{
    public ValidateOptionsResult Validate(string? name, BlockAttentionServerOptions options)
    {
        var failures = new List<string>();
        void AtLeast(long value, long minimum, string setting)
        {
            if (value < minimum)
            {
                failures.Add($"{options.Key(setting)} must be at least {minimum}, got {value}");
            }
        }

        AtLeast(options.MaxRequestBodyBytes, 1024, nameof(options.MaxRequestBodyBytes));
        AtLeast(options.MaxBlocks, 1, nameof(options.MaxBlocks));
        AtLeast(options.MaxBlockTokens, 1, nameof(options.MaxBlockTokens));
        AtLeast(options.MaxNewTokens, 1, nameof(options.MaxNewTokens));
        AtLeast(options.MaxConcurrentRequests ?? 1, 1, nameof(options.MaxConcurrentRequests));
        AtLeast(options.MaxQueuedRequests ?? 0, 0, nameof(options.MaxQueuedRequests));
        AtLeast(options.RetryAfterSeconds, 1, nameof(options.RetryAfterSeconds));
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
