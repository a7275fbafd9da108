using System.Diagnostics.Metrics;
using BlockAttention.Diagnostics;

namespace BlockAttention.Tests.Fixtures;

/// <summary>
/// A meter factory for one session that records the sizes of its batched forward passes (the
/// <c>blockattention.batch.size</c> histogram), ignoring every other session in the process.
/// </summary>
internal sealed class BatchSizeProbe : IMeterFactory
{
    private readonly MeterListener _listener = new();
    private readonly List<int> _sizes = [];

    public BatchSizeProbe()
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, this) && instrument.Name == BlockAttentionDiagnostics.BatchSize)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<int>((_, value, _, _) =>
        {
            lock (_sizes)
            {
                _sizes.Add(value);
            }
        });
        _listener.Start();
    }

    public IReadOnlyList<int> Sizes
    {
        get
        {
            lock (_sizes)
            {
                return [.. _sizes];
            }
        }
    }

    public Meter Create(MeterOptions options) => new(options.Name, options.Version, options.Tags, this);

    public void Dispose() => _listener.Dispose();
}
