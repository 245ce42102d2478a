namespace Collins.Tests.Generated;

/// <summary>Shared helpers for the tests of generated optimizers: seeded data and tolerant comparison.</summary>
internal static class GeneratedTestSupport
{
    /// <summary>Uniform floats in [-scale, scale) from a fixed seed.</summary>
    public static float[] RandomArray(int length, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[length];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Per-tensor random parameters.</summary>
    public static float[][] Parameters(IReadOnlyList<TensorSpec> specs, int seed)
        => specs.Select((s, i) => RandomArray(s.Shape.Aggregate(1, (a, b) => a * b), seed * 1000 + i)).ToArray();

    /// <summary>Per-tensor random gradients of step <paramref name="step"/>; a different scale per tensor and step.</summary>
    public static float[][] Gradients(IReadOnlyList<TensorSpec> specs, int seed, int step)
        => specs.Select((s, i) => RandomArray(s.Shape.Aggregate(1, (a, b) => a * b), seed * 7919 + step * 104729 + i, 0.1f + 0.3f * ((step + i) % 4))).ToArray();

    public static float[][] Clone(float[][] x) => x.Select(a => (float[])a.Clone()).ToArray();

    /// <summary>Asserts |actual − expected| ≤ 1e-5 · max(|expected|, 1) element-wise, naming the first offender.</summary>
    public static void AssertClose(IReadOnlyList<TensorSpec> specs, float[][] expected, float[][] actual, double relative = 1e-5, string context = "")
    {
        for (int t = 0; t < expected.Length; t++)
        {
            Assert.Equal(expected[t].Length, actual[t].Length);
            for (int i = 0; i < expected[t].Length; i++)
            {
                double e = expected[t][i], a = actual[t][i];
                double tol = relative * Math.Max(Math.Abs(e), 1.0);
                if (!(Math.Abs(a - e) <= tol))
                    Assert.Fail($"{context} tensor '{specs[t].Name}'[{i}]: expected {e:R}, got {a:R} (|diff| {Math.Abs(a - e):E3} > {tol:E3})");
            }
        }
    }

    public static void AssertBitIdentical(float[][] expected, float[][] actual)
    {
        for (int t = 0; t < expected.Length; t++)
            for (int i = 0; i < expected[t].Length; i++)
                if (BitConverter.SingleToInt32Bits(expected[t][i]) != BitConverter.SingleToInt32Bits(actual[t][i]))
                    Assert.Fail($"tensor {t}[{i}]: {expected[t][i]:R} vs {actual[t][i]:R} are not bit-identical");
    }
}

/// <summary>Thread-count determinism: parameters and both moments, bit for bit, over several MaxThreads, with proof that workers ran.</summary>
internal static class ThreadCountDeterminism
{
    public static readonly int[] ThreadCounts = { 1, 2, 3, 7 };

    /// <summary>Parameters, first and second moments after a run.</summary>
    public sealed record State(float[][] P, float[][] M, float[][] V);

    public static State Capture(SketchedOptimizerBase opt, float[][] p)
        => new(p, Enumerable.Range(0, opt.Tensors.Count).Select(opt.CopyFirstMoment).ToArray(),
               Enumerable.Range(0, opt.Tensors.Count).Select(opt.CopySecondMoment).ToArray());

    /// <summary>
    /// Runs <paramref name="run"/> (on this thread) for every thread count and asserts every result is bit-identical to
    /// the single-threaded one. For a count above 1 on a machine with pool workers it also requires a run in which the
    /// workers ran tiles (<see cref="Collins.Kernels.TileRunner.HelperTilesOfRunsOnThisThread"/>): on a loaded machine
    /// the caller can claim every tile before a worker is scheduled, so such a run is repeated (each repetition
    /// compared too) up to MaxAttempts times. Returns the tiles workers ran, per thread count.
    /// </summary>
    // On the 2-core CI machine running three test assemblies at once, the one pool worker can miss a short run many times
    // in a row; each attempt is a few milliseconds, so allow many.
    private const int MaxAttempts = 200;

    public static long[] AssertBitIdentical(Func<int, State> run)
    {
        var helperTiles = new long[ThreadCounts.Length];
        State? single = null;
        for (int c = 0; c < ThreadCounts.Length; c++)
        {
            int threads = ThreadCounts[c];
            for (int attempt = 0; attempt < MaxAttempts; attempt++)
            {
                long before = Collins.Kernels.TileRunner.HelperTilesOfRunsOnThisThread;
                var state = run(threads);
                helperTiles[c] += Collins.Kernels.TileRunner.HelperTilesOfRunsOnThisThread - before;
                if (single is null) single = state;
                else
                {
                    Compare(single.P, state.P, $"{threads} threads (attempt {attempt}): parameters");
                    Compare(single.M, state.M, $"{threads} threads (attempt {attempt}): first moments");
                    Compare(single.V, state.V, $"{threads} threads (attempt {attempt}): second moments");
                }
                if (threads == 1 || Collins.Kernels.TileRunner.WorkerCount == 0 || helperTiles[c] > 0) break;
            }
            if (threads == 1) Assert.Equal(0, helperTiles[c]);
            else if (Collins.Kernels.TileRunner.WorkerCount > 0)
                Assert.True(helperTiles[c] > 0, $"with MaxThreads = {threads} no pool worker ran a tile in {MaxAttempts} runs");
        }
        Assert.Contains(single!.V, v => v.Any(x => x != 0));
        return helperTiles;
    }

    private static void Compare(float[][] expected, float[][] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int t = 0; t < expected.Length; t++)
        {
            Assert.Equal(expected[t].Length, actual[t].Length);
            for (int i = 0; i < expected[t].Length; i++)
                if (BitConverter.SingleToInt32Bits(expected[t][i]) != BitConverter.SingleToInt32Bits(actual[t][i]))
                    Assert.Fail($"{what}: tensor {t}[{i}] {expected[t][i]:R} vs {actual[t][i]:R}");
        }
    }
}
