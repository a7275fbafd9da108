namespace BlockAttention.Caching;

/// <summary>Disposes a store the way it asks to be: asynchronously where it can (a store that writes behind finishes its writes first).</summary>
internal static class StoreDisposal
{
    public static async ValueTask DisposeAsync(IKvBlockStore? store)
    {
        switch (store)
        {
            case IAsyncDisposable asyncDisposable:
                await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                break;
            case IDisposable disposable:
                disposable.Dispose();
                break;
        }
    }
}
