namespace BlockAttention.Batching;

/// <summary>
/// Lets at most a fixed number of requests run at once, the others wait in arrival order; a
/// bounded number may wait, the next one is refused with <see cref="SessionBusyException"/>.
/// </summary>
internal sealed class AdmissionQueue(int maxActive, int maxQueued)
{
    private readonly object _lock = new();
    private readonly LinkedList<TaskCompletionSource> _waiting = new();
    private int _active;

    /// <summary>Requests running now.</summary>
    public int Active
    {
        get
        {
            lock (_lock)
            {
                return _active;
            }
        }
    }

    /// <summary>Requests waiting for a place.</summary>
    public int Queued
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>Waits for a place; the caller calls <see cref="Exit"/> once it is done (not when this throws).</summary>
    /// <exception cref="SessionBusyException">The queue is full.</exception>
    /// <exception cref="OperationCanceledException">Cancelled while waiting.</exception>
    public async ValueTask EnterAsync(CancellationToken cancellationToken)
    {
        LinkedListNode<TaskCompletionSource> node;
        lock (_lock)
        {
            if (_active < maxActive && _waiting.Count == 0)
            {
                _active++;
                return;
            }

            if (_waiting.Count >= maxQueued)
            {
                throw new SessionBusyException(
                    $"the session is busy: {_active} requests are running and {_waiting.Count} are waiting, the most it queues (MaxQueuedRequests = {maxQueued})");
            }

            node = _waiting.AddLast(new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        }

        using (cancellationToken.Register(() => Abandon(node, cancellationToken)))
        {
            await node.Value.Task.ConfigureAwait(false);
        }
    }

    /// <summary>Gives the place to the first waiting request, if any.</summary>
    public void Exit()
    {
        lock (_lock)
        {
            var first = _waiting.First;
            if (first is null)
            {
                _active--;
                return;
            }

            // The place passes on: _active stays.
            _waiting.RemoveFirst();
            first.Value.TrySetResult();
        }
    }

    private void Abandon(LinkedListNode<TaskCompletionSource> node, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (node.List is null)
            {
                return; // it was given a place already: it will Exit as usual
            }

            _waiting.Remove(node);
            node.Value.TrySetCanceled(cancellationToken);
        }
    }
}
