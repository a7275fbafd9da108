// The servers of the test classes share one loaded model (see ServerFactory), and a model runs one
// forward pass at a time only within one BlockSession; so test classes run one after another.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
