namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// Byte-level BPE merging of one piece, as Hugging Face <c>tokenizers</c> does it (<c>Word::merge_all</c>):
/// the symbols form a linked list and a priority queue (<see cref="IMergeQueue"/>) holds every adjacent pair that
/// has a merge, ordered by merge rank and then by position. The lowest entry is merged and the pairs it forms with its neighbours are
/// queued; an entry whose pair has changed since it was queued is dropped when it comes out, by the same test
/// as the reference (the pair now there must merge into the same token).
/// </summary>
/// <remarks>
/// Each merge removes one symbol and queues at most two pairs, so a piece of <c>n</c> bytes costs
/// O(n log n) however long it is: a megabyte of one repeated character is one piece, and merging it by
/// rescanning all pairs after every merge (the textbook loop) takes minutes. Working memory is about 40 bytes
/// per byte of the piece.
/// </remarks>
internal sealed class BytePairEncoder
{
    // previous[i] of a symbol merged into its left neighbour.
    private const int Removed = -2;

    // Pieces longer than this queue their merges in MergeRuns, shorter ones in MergeHeap.
    private const int RunQueueFromBytes = 48;

    private readonly Dictionary<long, Merge> _merges;
    private readonly int[] _newIdByRank;
    private readonly int[] _byteIds;

    /// <param name="vocabulary">Token (byte-level spelling) to id; has a token for every byte.</param>
    /// <param name="merges">Merge rules in priority order, each <c>"left right"</c>, all of whose tokens are in the vocabulary.</param>
    public BytePairEncoder(IReadOnlyDictionary<string, int> vocabulary, IReadOnlyList<string> merges)
    {
        _byteIds = new int[256];
        for (int b = 0; b < 256; b++)
        {
            _byteIds[b] = vocabulary[ByteLevelAlphabet.ToChar((byte)b).ToString()];
        }

        _merges = new Dictionary<long, Merge>(merges.Count, PairComparer.Instance);
        _newIdByRank = new int[merges.Count];
        for (int rank = 0; rank < merges.Count; rank++)
        {
            string merge = merges[rank];
            int space = merge.IndexOf(' ', StringComparison.Ordinal);
            string left = merge[..space];
            string right = merge[(space + 1)..];
            int newId = vocabulary[left + right];

            // As the reference builds its map: a pair listed twice keeps its last rank.
            _merges[Key(vocabulary[left], vocabulary[right])] = new Merge(rank, newId);
            _newIdByRank[rank] = newId;
        }
    }

    /// <summary>Appends the ids of <paramref name="bytes"/> merged as far as the rules allow.</summary>
    /// <param name="bytes">The piece's UTF-8 bytes; not empty.</param>
    /// <param name="ids">Where the ids go.</param>
    /// <param name="scratch">Buffers reused from piece to piece within one call.</param>
    public void Encode(ReadOnlySpan<byte> bytes, List<int> ids, Scratch scratch)
    {
        int n = bytes.Length;
        if (n == 1)
        {
            ids.Add(_byteIds[bytes[0]]);
            return;
        }

        scratch.Reset(n);
        Span<int> symbol = scratch.Symbols.AsSpan(0, n);
        Span<int> next = scratch.Next.AsSpan(0, n);
        for (int i = 0; i < n; i++)
        {
            symbol[i] = _byteIds[bytes[i]];
            scratch.Previous[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }

        // Both queues give entries in the same order; the run queue is faster once a piece is long.
        if (n <= RunQueueFromBytes)
        {
            MergeAll(scratch.Heap, scratch, n);
        }
        else
        {
            MergeAll(scratch.Runs, scratch, n);
        }

        for (int i = 0; i >= 0; i = next[i])
        {
            ids.Add(symbol[i]);
        }
    }

    private void MergeAll<TQueue>(TQueue queue, Scratch scratch, int n)
        where TQueue : IMergeQueue
    {
        Span<int> symbol = scratch.Symbols.AsSpan(0, n);
        Span<int> previous = scratch.Previous.AsSpan(0, n);
        Span<int> next = scratch.Next.AsSpan(0, n);

        queue.Clear();
        for (int i = 0; i + 1 < n; i++)
        {
            if (_merges.TryGetValue(Key(symbol[i], symbol[i + 1]), out Merge merge))
            {
                queue.AddInOrder(merge.Rank, i);
            }
        }

        queue.Build();
        while (queue.TryPop(out int queuedRank, out int position))
        {
            // A removed symbol, or the last one, has no pair.
            if (previous[position] == Removed || next[position] < 0)
            {
                continue;
            }

            int right = next[position];
            if (!_merges.TryGetValue(Key(symbol[position], symbol[right]), out Merge current) || current.NewId != _newIdByRank[queuedRank])
            {
                continue; // stale: the pair at this position changed after it was queued
            }

            symbol[position] = current.NewId;
            next[position] = next[right];
            previous[right] = Removed;
            if (next[right] >= 0)
            {
                previous[next[right]] = position;
            }

            if (previous[position] >= 0 && _merges.TryGetValue(Key(symbol[previous[position]], symbol[position]), out Merge before))
            {
                queue.Push(before.Rank, previous[position]);
            }

            if (next[position] >= 0 && _merges.TryGetValue(Key(symbol[position], symbol[next[position]]), out Merge after))
            {
                queue.Push(after.Rank, position);
            }
        }
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    private readonly record struct Merge(int Rank, int NewId);

    /// <summary>
    /// Hashes a packed pair of ids well. <see cref="long.GetHashCode"/> is the XOR of the halves, which is 0 for
    /// every pair of equal ids: the merges of runs (" " + " ", "  " + "  ", "a" + "a", ...) then share one bucket
    /// chain thousands long, and every lookup in a run of spaces or of one letter walks it.
    /// </summary>
    private sealed class PairComparer : IEqualityComparer<long>
    {
        public static readonly PairComparer Instance = new();

        public bool Equals(long x, long y) => x == y;

        public int GetHashCode(long pair) => (int)(((ulong)pair * 0x9E3779B97F4A7C15UL) >> 32);
    }

    /// <summary>Working buffers for <see cref="Encode"/>, grown as needed; one per encoding call, never shared between threads.</summary>
    internal sealed class Scratch
    {
        private MergeRuns? _runs;

        public int[] Symbols { get; private set; } = new int[64];

        public int[] Previous { get; private set; } = new int[64];

        public int[] Next { get; private set; } = new int[64];

        public MergeHeap Heap { get; } = new();

        // Made on first use: most texts have no piece long enough to need it.
        public MergeRuns Runs => _runs ??= new();

        public void Reset(int length)
        {
            if (Symbols.Length < length)
            {
                int size = Math.Max(length, Symbols.Length * 2);
                Symbols = new int[size];
                Previous = new int[size];
                Next = new int[size];
            }
        }
    }
}
