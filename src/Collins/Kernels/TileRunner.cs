namespace Collins.Kernels;

/// <summary>
/// The buffers of one tensor for one step, as raw pointers so that tile kernels can run on worker
/// threads (spans cannot cross threads). Only <see cref="TileRunner"/> creates it, while the
/// buffers are pinned; kernels read them through the span properties and never keep them.
/// </summary>
public readonly unsafe struct TileBuffers
{
    private readonly float* _p, _g, _m, _v, _sumM, _sumV;
    private readonly int _length, _buckets, _mLength, _sumMLength, _sumVLength, _tiles;

    internal TileBuffers(float* p, float* g, int length, float* m, int mLength, float* v, int buckets,
                         float* sumM, int sumMLength, float* sumV, int sumVLength, int tiles)
    {
        _p = p; _g = g; _length = length; _m = m; _mLength = mLength; _v = v; _buckets = buckets;
        _sumM = sumM; _sumMLength = sumMLength; _sumV = sumV; _sumVLength = sumVLength; _tiles = tiles;
    }

    /// <summary>The number of tiles of the run (a kernel that splits a range by tile reads it here).</summary>
    public int TileCount => _tiles;

    /// <summary>The tensor's parameters (d).</summary>
    public Span<float> Parameters => new(_p, _length);
    /// <summary>The tensor's gradient (d).</summary>
    public ReadOnlySpan<float> Gradient => new(_g, _length);
    /// <summary>First-moment sketch (k; empty when β1 = 0).</summary>
    public Span<float> FirstMoment => new(_m, _mLength);
    /// <summary>Second-moment sketch (k).</summary>
    public Span<float> SecondMoment => new(_v, _buckets);
    /// <summary>Phase-1 workspace: Σ σ·g per bucket (k; empty when β1 = 0 or dense).</summary>
    public Span<float> SumM => new(_sumM, _sumMLength);
    /// <summary>Phase-1 workspace: Σ g² per bucket (k; empty when dense).</summary>
    public Span<float> SumV => new(_sumV, _sumVLength);
}

/// <summary>A tile kernel: processes tile <paramref name="tile"/>; returns false when it saw a non-finite value.</summary>
public delegate bool TileKernel(int tile, in TileBuffers buffers, in StepScalars scalars);

/// <summary>
/// Runs a tile kernel over a fixed partition of tiles on up to <c>maxThreads</c> threads. The
/// partition never depends on the thread count, so results are bit-identical for any count.
/// </summary>
/// <remarks>
/// A small persistent pool of background worker threads (ProcessorCount − 1 of them, created on the
/// first multi-threaded run) claims tile indices with <see cref="Interlocked.Increment(ref int)"/>;
/// the calling thread works too. Each participant starts on its own contiguous range of tiles and
/// walks it in order (so a thread's memory streams continue from one tile to the next and the
/// hardware prefetchers keep running), then steals the remaining tiles of the other ranges; which
/// thread runs a tile never changes what the tile computes. A run allocates nothing after the pool exists. Runs from
/// different threads are serialised by a lock (one run owns the pool at a time); a run started from
/// inside a kernel (on the caller or on a worker) executes its tiles inline on that thread, so it
/// can never deadlock. The first exception a kernel throws is rethrown on the caller after every
/// participating thread has stopped; workers survive it.
/// </remarks>
public static unsafe class TileRunner
{
    /// <summary>Runs <paramref name="kernel"/> for tiles 0..tiles−1; returns true when every tile returned true.</summary>
    public static bool Run(int tiles, int maxThreads, TileKernel kernel,
                           Span<float> parameters, ReadOnlySpan<float> gradient,
                           Span<float> firstMoment, Span<float> secondMoment,
                           Span<float> sumM, Span<float> sumV, in StepScalars scalars)
    {
        ArgumentNullException.ThrowIfNull(kernel);
        fixed (float* p = parameters)
        fixed (float* g = gradient)
        fixed (float* m = firstMoment)
        fixed (float* v = secondMoment)
        fixed (float* sm = sumM)
        fixed (float* sv = sumV)
        {
            var buffers = new TileBuffers(p, g, parameters.Length, m, firstMoment.Length, v, secondMoment.Length,
                                          sm, sumM.Length, sv, sumV.Length, tiles);
            return RunCore(tiles, maxThreads, kernel, in buffers, in scalars);
        }
    }

    /// <summary>Number of pool workers (threads besides the caller) a run can use: ProcessorCount − 1.</summary>
    internal static int WorkerCount => Math.Max(0, Environment.ProcessorCount - 1);

    // ---- the pool ------------------------------------------------------------------------------
    private static readonly object s_runLock = new();          // one run owns the pool at a time
    private static readonly object s_createLock = new();
    private static SemaphoreSlim? s_wake;                       // one permit per helper per run
    // Released once by the last helper out of a closed run (exactly when the owner waits: see RunCore). A semaphore rather
    // than a ManualResetEventSlim, whose lock object is created lazily the first time a wait blocks: that one-time
    // allocation landed on the calling thread in the middle of a measured step.
    private static SemaphoreSlim? s_done;
    private static volatile bool s_started;

    // t_ marks a [ThreadStatic] field (the dotnet/runtime convention), which the s_ naming rule cannot tell apart.
#pragma warning disable IDE1006
    [ThreadStatic] private static bool t_inRun;                 // true on workers and on a caller during its run
    [ThreadStatic] private static long t_helperTilesOfOwnRuns;  // tiles pool workers ran in the runs this thread owned
#pragma warning restore IDE1006

    /// <summary>
    /// Tiles that pool workers (not the caller) ran in the runs this thread has owned so far: lets a test
    /// see that a step really used more than one thread. Diagnostic only; nothing reads it to decide anything.
    /// </summary>
    internal static long HelperTilesOfRunsOnThisThread => t_helperTilesOfOwnRuns;

    // ---- the current run (written by the owner before waking helpers; read by helpers) ---------
    private static TileKernel? s_kernel;
    private static TileBuffers s_buffers;
    private static StepScalars s_scalars;
    private static int s_tiles;
    private static int s_participants;                          // caller + helpers of the current run
    private static int s_joinSeq;                               // helpers that joined the current run (picks their first range)
    private static Range[] s_ranges = Array.Empty<Range>();     // per participant: next tile (Interlocked) and end

    /// <summary>One participant's contiguous tile range, padded to its own cache lines.</summary>
    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Explicit, Size = 128)]
    private struct Range
    {
        [System.Runtime.InteropServices.FieldOffset(64)] public int Next;
        [System.Runtime.InteropServices.FieldOffset(68)] public int End;
    }
    private static int s_failed;                                // 1 when some tile returned false
    private static int s_helperTiles;                           // tiles helpers ran in the current run
    // Run state: Closed flag | number of helpers inside the run. A helper may only join an open run;
    // the owner closes the run once every tile is claimed and waits only for helpers that joined,
    // never for a helper the OS has not scheduled yet (that one later finds the run closed).
    private const int Closed = 1 << 30;
    private static int s_state = Closed;
    private static Exception? s_exception;                      // first exception a kernel threw

    private static bool RunCore(int tiles, int maxThreads, TileKernel kernel, in TileBuffers buffers, in StepScalars scalars)
    {
        if (tiles <= 0) return true;
        int helpers = Math.Min(Math.Min(maxThreads, tiles) - 1, WorkerCount);
        if (helpers <= 0 || t_inRun) return RunInline(tiles, kernel, in buffers, in scalars);

        EnsureStarted();
        lock (s_runLock)
        {
            t_inRun = true;
            try
            {
                s_kernel = kernel;
                s_buffers = buffers;
                s_scalars = scalars;
                s_tiles = tiles;
                s_failed = 0;
                s_helperTiles = 0;
                s_exception = null;
                int participants = helpers + 1;
                s_participants = participants;
                s_joinSeq = 0;
                var ranges = s_ranges;
                for (int j = 0; j < participants; j++)
                {
                    ranges[j].Next = (int)((long)tiles * j / participants);
                    ranges[j].End = (int)((long)tiles * (j + 1) / participants);
                }
                Interlocked.Exchange(ref s_state, 0);           // open (full fence: publishes the fields above)
                s_wake!.Release(helpers);

                Work(0);                                        // the caller works too, as participant 0

                // Every tile is claimed now: close the run, then wait for the helpers inside it to finish their tiles.
                if (Interlocked.Add(ref s_state, Closed) != Closed) s_done!.Wait();
                t_helperTilesOfOwnRuns += Volatile.Read(ref s_helperTiles);
                s_kernel = null;
                s_buffers = default;
                var ex = s_exception;
                s_exception = null;
                if (ex is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ex).Throw();
                return s_failed == 0;
            }
            finally { t_inRun = false; }
        }
    }

    private static bool RunInline(int tiles, TileKernel kernel, in TileBuffers buffers, in StepScalars scalars)
    {
        bool ok = true;
        for (int t = 0; t < tiles; t++) ok &= kernel(t, in buffers, in scalars);
        return ok;
    }

    /// <summary>
    /// Runs tiles of the current run as participant <paramref name="self"/>: first its own range in
    /// order, then whatever is left of the others'; records failures and the first exception.
    /// </summary>
    private static int Work(int self)
    {
        var kernel = s_kernel!;
        var ranges = s_ranges;
        int participants = s_participants;
        bool ok = true;
        int ran = 0;
        try
        {
            for (int k = 0; k < participants; k++)
            {
                ref Range r = ref ranges[(self + k) % participants];
                int end = r.End, t;
                while ((t = Interlocked.Increment(ref r.Next) - 1) < end)
                {
                    ok &= kernel(t, in s_buffers, in s_scalars);
                    ran++;
                }
            }
        }
        catch (Exception ex)
        {
            Interlocked.CompareExchange(ref s_exception, ex, null);
            for (int k = 0; k < participants; k++)              // nobody claims more tiles of a failed run
                Volatile.Write(ref ranges[k].Next, ranges[k].End);
        }
        if (!ok) Volatile.Write(ref s_failed, 1);
        return ran;
    }

    private static void EnsureStarted()
    {
        if (s_started) return;
        lock (s_createLock)
        {
            if (s_started) return;
            s_ranges = new Range[WorkerCount + 1];
            s_wake = new SemaphoreSlim(0);
            s_done = new SemaphoreSlim(0);
            for (int i = 0; i < WorkerCount; i++)
            {
                var thread = new Thread(WorkerLoop, maxStackSize: 1 << 20)
                {
                    IsBackground = true,
                    Name = $"Collins.TileRunner worker {i}",
                };
                thread.Start();
            }
            s_started = true;
        }
    }

    /// <summary>Enters the current run if it is still open.</summary>
    private static bool TryJoin()
    {
        int st = Volatile.Read(ref s_state);
        while (true)
        {
            if ((st & Closed) != 0) return false;
            int seen = Interlocked.CompareExchange(ref s_state, st + 1, st);
            if (seen == st) return true;
            st = seen;
        }
    }

    private static void WorkerLoop()
    {
        t_inRun = true;                                         // a nested run on a worker executes inline
        var wake = s_wake!;
        var done = s_done!;
        while (true)
        {
            wake.Wait();
            if (!TryJoin()) continue;                           // woke after the run it was meant for had closed
            try { Interlocked.Add(ref s_helperTiles, Work(Interlocked.Increment(ref s_joinSeq) % s_participants)); }
            catch (Exception ex) { Interlocked.CompareExchange(ref s_exception, ex, null); }   // never kill a worker
            if (Interlocked.Decrement(ref s_state) == Closed) done.Release();   // last helper out of a closed run
        }
    }
}
