using BlockAttention.Attention;
using static TorchSharp.torch;

namespace BlockAttention.Batching;

/// <summary>What a step gave its request: the token picked (-1 when it kept no logits) and the forward pass's time.</summary>
internal readonly record struct StepOutcome(int Token, TimeSpan Compute, int BatchSize);

/// <summary>
/// One sequence's step waiting for (or in) a batched forward pass. A step can be cancelled only
/// while it waits: once the scheduler has taken it, the forward pass writes into its cache, and the
/// request must wait for it to end before its cache is reused.
/// </summary>
internal sealed class StepEntry
{
    private const int Queued = 0, Taken = 1, Cancelled = 2;
    private readonly TaskCompletionSource<StepOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _state;
    private CancellationTokenRegistration _registration;

    public StepEntry(ReadOnlyMemory<int> tokens, KvCache cache, Func<Tensor, int>? pick, StepMember? member)
    {
        Tokens = tokens;
        Cache = cache;
        Pick = pick;
        Member = member;
    }

    public ReadOnlyMemory<int> Tokens { get; }

    public KvCache Cache { get; }

    /// <summary>Picks the next token from the last position's logits; null for a prefill chunk that needs none.</summary>
    public Func<Tensor, int>? Pick { get; }

    public int LogitsToKeep => Pick is null ? 0 : 1;

    public StepMember? Member { get; }

    public Task<StepOutcome> Task => _completion.Task;

    /// <summary>Cancels the step when <paramref name="cancellationToken"/> fires while it still waits.</summary>
    public void CancelWith(CancellationToken cancellationToken)
    {
        if (cancellationToken.CanBeCanceled)
        {
            _registration = cancellationToken.Register(static (state, token) => ((StepEntry)state!).TryCancel(token), this);
        }
    }

    /// <summary>Cancels the step unless the scheduler has taken it; true when cancelled (now or before).</summary>
    public bool TryCancel(CancellationToken token = default)
    {
        int state = Interlocked.CompareExchange(ref _state, Cancelled, Queued);
        if (state == Queued)
        {
            _completion.TrySetCanceled(token);
            return true;
        }

        return state == Cancelled;
    }

    /// <summary>The scheduler claims the step for a forward pass; false when it was cancelled.</summary>
    public bool TryTake() => Interlocked.CompareExchange(ref _state, Taken, Queued) == Queued;

    public void Complete(StepOutcome outcome)
    {
        _registration.Dispose();
        _completion.TrySetResult(outcome);
    }

    public void Fail(Exception exception)
    {
        _registration.Dispose();
        _completion.TrySetException(exception);
    }
}

/// <summary>A request known to the scheduler, so that it can wait a moment for the request's next step instead of running a smaller batch.</summary>
internal sealed class StepMember
{
    /// <summary>The scheduler ran this member's last step and has not seen its next one, nor its leaving.</summary>
    public bool Owing { get; set; }

    public bool Left { get; set; }
}
