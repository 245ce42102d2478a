using Collins.Kernels;

namespace Collins.Tests;

[Trait("Category", "Kernels")]
[Collection("TileRunner allocation")]
public class TileRunnerTests
{
    private static readonly StepScalars Scalars = StepScalars.For(1, 1e-3f, 0.9, 0.999, 0.0);

    [Theory]
    [InlineData(1, 1)]
    [InlineData(7, 1)]
    [InlineData(7, 2)]
    [InlineData(1000, 2)]
    [InlineData(1000, 64)]
    public void Each_tile_runs_exactly_once(int tiles, int maxThreads)
    {
        var counts = new int[tiles];
        bool ok = TileRunner.Run(tiles, maxThreads, (int t, in TileBuffers _, in StepScalars _) =>
        {
            Interlocked.Increment(ref counts[t]);
            return true;
        }, Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars);
        Assert.True(ok);
        Assert.All(counts, c => Assert.Equal(1, c));
    }

    [Fact]
    public void The_helper_tile_counter_counts_exactly_the_tiles_other_threads_ran()
    {
        int caller = Environment.CurrentManagedThreadId;
        long byOthers = 0, expectedTotal = 0;
        long before = TileRunner.HelperTilesOfRunsOnThisThread;
        for (int run = 0; run < 50; run++)
        {
            int others = 0;
            Assert.True(TileRunner.Run(200, 8, (int t, in TileBuffers _, in StepScalars _) =>
            {
                if (Environment.CurrentManagedThreadId != caller) Interlocked.Increment(ref others);
                for (int i = 0; i < 200; i++) Thread.SpinWait(1);
                return true;
            }, Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars));
            byOthers += others;
            expectedTotal += others;
            Assert.Equal(expectedTotal, TileRunner.HelperTilesOfRunsOnThisThread - before);
        }
        // Single-threaded and inline runs add nothing.
        long mark = TileRunner.HelperTilesOfRunsOnThisThread;
        TileRunner.Run(200, 1, (int _, in TileBuffers _, in StepScalars _) => true,
            Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars);
        Assert.Equal(mark, TileRunner.HelperTilesOfRunsOnThisThread);
        if (TileRunner.WorkerCount > 0) Assert.True(byOthers > 0, "no worker ran a tile in 50 runs of 200 tiles");
    }

    [Fact]
    public void Zero_tiles_is_true_and_runs_nothing()
    {
        int calls = 0;
        Assert.True(TileRunner.Run(0, 4, (int _, in TileBuffers _, in StepScalars _) => { calls++; return false; },
            Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars));
        Assert.Equal(0, calls);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(8)]
    public void Results_are_anded_and_every_tile_still_runs(int maxThreads)
    {
        const int tiles = 300;
        var counts = new int[tiles];
        bool ok = TileRunner.Run(tiles, maxThreads, (int t, in TileBuffers _, in StepScalars _) =>
        {
            Interlocked.Increment(ref counts[t]);
            return t != 123;
        }, Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars);
        Assert.False(ok);
        Assert.All(counts, c => Assert.Equal(1, c));
        // and the next run is not polluted by the failure
        Assert.True(TileRunner.Run(tiles, maxThreads, (int _, in TileBuffers _, in StepScalars _) => true,
            Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(8)]
    public void Kernel_exceptions_reach_the_caller_and_the_pool_survives(int maxThreads)
    {
        for (int round = 0; round < 3; round++)
        {
            int failAt = 17 + round * 100;
            var ex = Assert.Throws<InvalidOperationException>(() => TileRunner.Run(400, maxThreads, (int t, in TileBuffers _, in StepScalars _) =>
            {
                if (t == failAt) throw new InvalidOperationException($"tile {t}");
                return true;
            }, Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars));
            Assert.Equal($"tile {failAt}", ex.Message);

            var counts = new int[400];
            Assert.True(TileRunner.Run(400, maxThreads, (int t, in TileBuffers _, in StepScalars _) =>
            {
                Interlocked.Increment(ref counts[t]);
                return true;
            }, Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars));
            Assert.All(counts, c => Assert.Equal(1, c));
        }
    }

    [Fact]
    public void Kernels_see_the_buffers_and_scalars()
    {
        var p = new float[1000]; var g = new float[1000]; var m = new float[10]; var v = new float[10]; var sm = new float[3]; var sv = new float[4];
        for (int i = 0; i < g.Length; i++) g[i] = i;
        var s = new StepScalars(0.5f, 1f, 1f, 1f, 7);
        Assert.True(TileRunner.Run(10, 4, (int t, in TileBuffers b, in StepScalars sc) =>
        {
            if (b.Parameters.Length != 1000 || b.FirstMoment.Length != 10 || b.SecondMoment.Length != 10 || b.SumM.Length != 3 || b.SumV.Length != 4 || sc.Step != 7)
                return false;
            var pp = b.Parameters.Slice(t * 100, 100);
            var gg = b.Gradient.Slice(t * 100, 100);
            for (int i = 0; i < pp.Length; i++) pp[i] = sc.LearningRate * gg[i];
            return true;
        }, p, g, m, v, sm, sv, s));
        for (int i = 0; i < p.Length; i++) Assert.Equal(0.5f * i, p[i]);
    }

    [Fact]
    public void A_run_started_inside_a_kernel_runs_inline_without_deadlock()
    {
        var inner = new int[4 * 50];
        Assert.True(TileRunner.Run(4, 8, (int t, in TileBuffers _, in StepScalars _) =>
            TileRunner.Run(50, 8, (int u, in TileBuffers _, in StepScalars _) =>
            {
                Interlocked.Increment(ref inner[t * 50 + u]);
                return true;
            }, Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars),
            Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars));
        Assert.All(inner, c => Assert.Equal(1, c));
    }

    [Fact]
    public void Concurrent_callers_each_get_every_tile_exactly_once()
    {
        const int callers = 4, runs = 200, tiles = 64;
        var counts = new int[callers, tiles];
        var threads = Enumerable.Range(0, callers).Select(c => new Thread(() =>
        {
            for (int r = 0; r < runs; r++)
            {
                Assert.True(TileRunner.Run(tiles, 8, (int t, in TileBuffers _, in StepScalars _) =>
                {
                    Interlocked.Increment(ref counts[c, t]);
                    return true;
                }, Span<float>.Empty, ReadOnlySpan<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars));
            }
        })).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) t.Join();
        for (int c = 0; c < callers; c++)
            for (int t = 0; t < tiles; t++)
                Assert.Equal(runs, counts[c, t]);
    }

    [Fact]
    public void Dense_adamw_multithreaded_is_bit_identical_to_single_threaded_and_allocation_free()
    {
        int n = 3 * DenseAdamWCpu.TileLength + 1234;
        var rng = new Random(5);
        float[] p0 = new float[n], g = new float[n];
        for (int i = 0; i < n; i++) { p0[i] = (float)rng.NextDouble() - 0.5f; g[i] = (float)(rng.NextDouble() - 0.5) * 1e-2f; }
        foreach (bool withM in new[] { true, false })
        {
            float beta1 = withM ? 0.9f : 0f;
            var pa = (float[])p0.Clone(); var ma = new float[withM ? n : 0]; var va = new float[n];
            var pb = (float[])p0.Clone(); var mb = new float[withM ? n : 0]; var vb = new float[n];
            for (int step = 1; step <= 3; step++)
            {
                var s = StepScalars.For(step, 1e-3f, beta1, 0.999, 0.01);
                DenseAdamWCpu.Step(pa, g, ma, va, s, beta1, 0.999f, 1e-8f);
                DenseAdamWCpu.Step(pb, g, mb, vb, s, beta1, 0.999f, 1e-8f, maxThreads: 8);
            }
            Assert.Equal(pa, pb); Assert.Equal(ma, mb); Assert.Equal(va, vb);

            var s4 = StepScalars.For(4, 1e-3f, beta1, 0.999, 0.01);
            DenseAdamWCpu.Step(pb, g, mb, vb, s4, beta1, 0.999f, 1e-8f, maxThreads: 8);
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 20; i++) DenseAdamWCpu.Step(pb, g, mb, vb, s4, beta1, 0.999f, 1e-8f, maxThreads: 8);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
    }

    [Fact]
    public void Dense_adamw_matches_a_double_precision_reference()
    {
        int n = 1000 + 13;
        var rng = new Random(11);
        var p = new float[n]; var g = new float[n]; var m = new float[n]; var v = new float[n];
        var pd = new double[n]; var md = new double[n]; var vd = new double[n];
        for (int i = 0; i < n; i++) { p[i] = (float)(rng.NextDouble() - 0.5); pd[i] = p[i]; }
        for (int step = 1; step <= 5; step++)
        {
            for (int i = 0; i < n; i++) g[i] = (float)((rng.NextDouble() - 0.5) * 0.1);
            var s = StepScalars.For(step, 1e-2f, 0.9, 0.999, 0.1);
            DenseAdamWCpu.Step(p, g, m, v, s, 0.9f, 0.999f, 1e-8f);
            double bc1 = 1 - Math.Pow(0.9, step), bc2 = 1 - Math.Pow(0.999, step);
            for (int i = 0; i < n; i++)
            {
                md[i] = 0.9 * md[i] + 0.1 * g[i];
                vd[i] = 0.999 * vd[i] + 0.001 * (double)g[i] * g[i];
                pd[i] = pd[i] * (1 - 1e-2 * 0.1) - 1e-2 * (md[i] / bc1) / (Math.Sqrt(vd[i]) / Math.Sqrt(bc2) + 1e-8);
            }
        }
        for (int i = 0; i < n; i++) Assert.True(Math.Abs(p[i] - pd[i]) <= 1e-5 * Math.Max(1, Math.Abs(pd[i])), $"p[{i}] {p[i]} vs {pd[i]}");
    }

    [Fact]
    public void All_finite_finds_a_non_finite_value_anywhere()
    {
        foreach (int n in new[] { 0, 1, 7, 16, 63, 64, 65, 1000 })
        {
            var g = new float[n];
            for (int i = 0; i < n; i++) g[i] = float.MaxValue * (i % 2 == 0 ? 1 : -1);
            Assert.True(DenseAdamWCpu.AllFinite(g));
            foreach (float bad in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity })
                for (int j = 0; j < n; j++)
                {
                    float keep = g[j]; g[j] = bad;
                    Assert.False(DenseAdamWCpu.AllFinite(g));
                    g[j] = keep;
                }
        }
    }
}

/// <summary>
/// Allocation of a run, measured per thread (the calling thread, and each pool worker from inside
/// the kernel it runs), so no other thread's allocations (test runner, timers, the JIT's background
/// tier-up) can enter the measure and no sleep for tier-up is needed. Runs alone (no other test class
/// in parallel) because another class's kernel running on the shared pool's workers may allocate, and a run that waits for
/// the pool lock held by another class's run allocated (seen in the scalar ISA leg, whose slower runs overlap more). Every class that asserts
/// "allocates nothing" joins this collection.
/// </summary>
[CollectionDefinition("TileRunner allocation", DisableParallelization = true)]
public sealed class TileRunnerAllocationCollection { }

[Collection("TileRunner allocation")]
public class TileRunnerAllocationTests
{
    private static readonly StepScalars Scalars = StepScalars.For(1, 1e-3f, 0.9, 0.999, 0.0);

    // Per managed thread id (small integers): the thread's allocation counter at the first and the
    // last tile it ran inside the measured window; -1 = ran none. Preallocated: the kernel allocates nothing.
    private static readonly long[] s_first = new long[1 << 16];
    private static readonly long[] s_last = new long[1 << 16];
    private static readonly int[] s_tiles = new int[1 << 16];
    private static int s_sink;

    private static bool MeasuringKernel(int tile, in TileBuffers buffers, in StepScalars scalars)
    {
        int id = Environment.CurrentManagedThreadId;
        long bytes = GC.GetAllocatedBytesForCurrentThread();
        if (s_first[id] < 0) s_first[id] = bytes;
        s_last[id] = bytes;
        s_tiles[id]++;
        // A little work per tile, so that a helper has time to join a run before the caller has claimed every tile.
        int x = tile;
        for (int i = 0; i < 2000; i++) x = x * 1103515245 + 12345;
        Interlocked.Add(ref s_sink, x);
        return true;
    }

    [Fact]
    public void A_run_allocates_nothing_on_the_caller_or_on_any_worker_after_warm_up()
    {
        TileKernel kernel = MeasuringKernel;             // one delegate, created once
        var p = new float[4096]; var g = new float[4096];
        Array.Fill(s_first, -1);
        for (int i = 0; i < 200; i++) Run();             // warm-up: pool threads, semaphores, first calls
        Array.Fill(s_first, -1);
        Array.Clear(s_tiles);
        int caller = Environment.CurrentManagedThreadId;
        long thread0 = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 2000; i++) Run();
        long callerBytes = GC.GetAllocatedBytesForCurrentThread() - thread0;
        Assert.Equal(0, callerBytes);

        // Between a worker's first and last tile of the window lie its waits, joins and range claims of
        // (nearly) every run it took part in: none of that may allocate.
        var workers = Enumerable.Range(0, s_first.Length).Where(id => id != caller && s_first[id] >= 0).ToArray();
        foreach (int id in workers)
            Assert.True(s_last[id] == s_first[id], $"worker thread {id} allocated {s_last[id] - s_first[id]} bytes over {s_tiles[id]} tiles");
        if (TileRunner.WorkerCount > 0)
        {
            // The measure covered some worker (2000 runs of 64 tiles each; a helper that never joined would make it vacuous).
            Assert.NotEmpty(workers);
            Assert.True(workers.Sum(id => s_tiles[id]) > 64, $"workers ran only {workers.Sum(id => s_tiles[id])} tiles");
        }
        Assert.Equal(2000 * 64, s_tiles.Sum());

        void Run() => TileRunner.Run(64, Environment.ProcessorCount, kernel, p, g, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Span<float>.Empty, Scalars);
    }
}
