using System.Diagnostics;

namespace BlockAttention.Batching;

/// <summary>
/// Where a batching session's time goes, for tuning on a new machine: with
/// <c>BLOCKATTENTION_STEP_TRACE=1</c> every 100 batches write one line to standard error with the
/// mean batch size and the mean milliseconds a batch spent idle before it started (waiting for
/// its requests' next steps), queuing its forward pass (host work; device work runs behind it),
/// and picking tokens (which waits for the device to finish). Off by default: it costs nothing then.
/// </summary>
internal sealed class StepTrace
{
    private const int Every = 100;
    private readonly object _lock = new();
    private long _lastEnd;
    private int _batches;
    private double _size, _idle, _forward, _picks;

    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("BLOCKATTENTION_STEP_TRACE") is "1" or "on" or "true";

    /// <summary>Records one batch's phases (timestamps from <see cref="Stopwatch.GetTimestamp"/>).</summary>
    public void Record(int size, long started, long forwardEnd, long end)
    {
        lock (_lock)
        {
            if (_lastEnd != 0)
            {
                _idle += Stopwatch.GetElapsedTime(_lastEnd, started).TotalMilliseconds;
            }

            _lastEnd = end;
            _size += size;
            _forward += Stopwatch.GetElapsedTime(started, forwardEnd).TotalMilliseconds;
            _picks += Stopwatch.GetElapsedTime(forwardEnd, end).TotalMilliseconds;
            if (++_batches == Every)
            {
                Console.Error.WriteLine(FormattableString.Invariant(
                    $"step trace: {Every} batches, mean size {_size / Every:F1}; ms per batch: idle before {_idle / Every:F2}, forward queued {_forward / Every:F2}, picks {_picks / Every:F2}"));
                _batches = 0;
                _size = _idle = _forward = _picks = 0;
            }
        }
    }
}
