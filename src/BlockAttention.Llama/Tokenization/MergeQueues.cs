namespace BlockAttention.Llama.Tokenization;

/// <summary>
/// The queue of candidate merges of <see cref="BytePairEncoder"/>: entries (rank, position) come out lowest rank
/// first and, among equal ranks, lowest position first, as from the reference's binary heap.
/// </summary>
internal interface IMergeQueue
{
    /// <summary>Empties the queue.</summary>
    void Clear();

    /// <summary>Adds an entry of the first scan; these come in increasing position. <see cref="Build"/> follows them.</summary>
    void AddInOrder(int rank, int position);

    /// <summary>Makes the entries of <see cref="AddInOrder"/> ready to pop.</summary>
    void Build();

    /// <summary>Adds an entry at any time.</summary>
    void Push(int rank, int position);

    /// <summary>Removes the lowest entry.</summary>
    bool TryPop(out int rank, out int position);
}

/// <summary>A four-way min-heap of entries packed into longs: the queue for short pieces.</summary>
internal sealed class MergeHeap : IMergeQueue
{
    private const int Arity = 4;

    private long[] _heap = new long[64];
    private int _count;

    public void Clear() => _count = 0;

    public void AddInOrder(int rank, int position)
    {
        if (_count == _heap.Length)
        {
            Array.Resize(ref _heap, _heap.Length * 2);
        }

        _heap[_count++] = Pack(rank, position);
    }

    public void Build()
    {
        for (int i = (_count - 2) / Arity; i >= 0 && _count > 1; i--)
        {
            SiftDown(i, _heap[i]);
        }
    }

    public void Push(int rank, int position)
    {
        if (_count == _heap.Length)
        {
            Array.Resize(ref _heap, _heap.Length * 2);
        }

        long value = Pack(rank, position);
        int i = _count++;
        while (i > 0)
        {
            int parent = (i - 1) / Arity;
            if (_heap[parent] <= value)
            {
                break;
            }

            _heap[i] = _heap[parent];
            i = parent;
        }

        _heap[i] = value;
    }

    public bool TryPop(out int rank, out int position)
    {
        if (_count == 0)
        {
            (rank, position) = (0, 0);
            return false;
        }

        long top = _heap[0];
        (rank, position) = ((int)(top >>> 32), (int)top);
        long last = _heap[--_count];
        if (_count > 0)
        {
            SiftDown(0, last);
        }

        return true;
    }

    // Rank in the high half, position in the low: both are non-negative, so longs order as (rank, position) does.
    private static long Pack(int rank, int position) => ((long)rank << 32) | (uint)position;

    private void SiftDown(int i, long value)
    {
        long[] heap = _heap;
        while (true)
        {
            int first = (Arity * i) + 1;
            if (first >= _count)
            {
                break;
            }

            int end = Math.Min(first + Arity, _count);
            int child = first;
            for (int c = first + 1; c < end; c++)
            {
                if (heap[c] < heap[child])
                {
                    child = c;
                }
            }

            if (value <= heap[child])
            {
                break;
            }

            heap[i] = heap[child];
            i = child;
        }

        heap[i] = value;
    }
}

/// <summary>
/// The queue for long pieces: entries grouped into runs of one rank in non-decreasing position, and a small heap
/// of runs ordered by their first entry.
/// </summary>
/// <remarks>
/// In a long piece most entries arrive in position order within a rank (the first scan, and the left-to-right
/// sweep of each rank's merges), so they append to a run in O(1) and come out of it in order, and the heap
/// holds a handful of runs instead of millions of entries. An entry that would break a run's order starts a
/// new run, and so does one whose rank's open run was displaced from the small table of open runs: that costs
/// only a longer heap. The order out is exactly (rank, position), as from one heap of all entries.
/// </remarks>
internal sealed class MergeRuns : IMergeQueue
{
    // The run that entries of a rank append to, by rank modulo the table's size; -1 for none.
    private const int OpenRunSlots = 256;
    private readonly int[] _openRuns = new int[OpenRunSlots];
    private int[][] _positions = new int[8][];
    private int[] _ranks = new int[8];
    private int[] _heads = new int[8];
    private int[] _counts = new int[8];
    private int _runs;

    // The heap: run numbers, keyed by (rank, position of the run's first entry) packed into a long.
    private long[] _heapKeys = new long[8];
    private int[] _heapRuns = new int[8];
    private int _heapCount;

    public void Clear()
    {
        Array.Fill(_openRuns, -1);
        _runs = 0;
        _heapCount = 0;
    }

    public void AddInOrder(int rank, int position) => Push(rank, position);

    public void Build()
    {
    }

    public void Push(int rank, int position)
    {
        ref int open = ref _openRuns[rank & (OpenRunSlots - 1)];
        int run = open;
        if (run >= 0 && _ranks[run] == rank && _heads[run] < _counts[run] && _positions[run][_counts[run] - 1] <= position)
        {
            // Appended behind the run's first entry: the run's key in the heap does not change.
            if (_counts[run] == _positions[run].Length)
            {
                Array.Resize(ref _positions[run], _positions[run].Length * 2);
            }

            _positions[run][_counts[run]++] = position;
            return;
        }

        run = NewRun(rank, position);
        open = run;
        HeapPush(Pack(rank, position), run);
    }

    public bool TryPop(out int rank, out int position)
    {
        if (_heapCount == 0)
        {
            (rank, position) = (0, 0);
            return false;
        }

        int run = _heapRuns[0];
        rank = _ranks[run];
        position = _positions[run][_heads[run]++];
        if (_heads[run] < _counts[run])
        {
            SiftDown(0, Pack(rank, _positions[run][_heads[run]]), run);
        }
        else if (--_heapCount > 0)
        {
            SiftDown(0, _heapKeys[_heapCount], _heapRuns[_heapCount]);
        }

        return true;
    }

    private static long Pack(int rank, int position) => ((long)rank << 32) | (uint)position;

    private int NewRun(int rank, int position)
    {
        if (_runs == _ranks.Length)
        {
            int size = _runs * 2;
            Array.Resize(ref _positions, size);
            Array.Resize(ref _ranks, size);
            Array.Resize(ref _heads, size);
            Array.Resize(ref _counts, size);
        }

        int run = _runs++;
        _positions[run] ??= new int[16];
        _positions[run][0] = position;
        (_ranks[run], _heads[run], _counts[run]) = (rank, 0, 1);
        return run;
    }

    private void HeapPush(long key, int run)
    {
        if (_heapCount == _heapKeys.Length)
        {
            Array.Resize(ref _heapKeys, _heapCount * 2);
            Array.Resize(ref _heapRuns, _heapCount * 2);
        }

        int i = _heapCount++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (_heapKeys[parent] <= key)
            {
                break;
            }

            (_heapKeys[i], _heapRuns[i]) = (_heapKeys[parent], _heapRuns[parent]);
            i = parent;
        }

        (_heapKeys[i], _heapRuns[i]) = (key, run);
    }

    private void SiftDown(int i, long key, int run)
    {
        while (true)
        {
            int child = (2 * i) + 1;
            if (child >= _heapCount)
            {
                break;
            }

            if (child + 1 < _heapCount && _heapKeys[child + 1] < _heapKeys[child])
            {
                child++;
            }

            if (key <= _heapKeys[child])
            {
                break;
            }

            (_heapKeys[i], _heapRuns[i]) = (_heapKeys[child], _heapRuns[child]);
            i = child;
        }

        (_heapKeys[i], _heapRuns[i]) = (key, run);
    }
}
