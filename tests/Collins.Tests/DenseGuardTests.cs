using Collins.Kernels;

namespace Collins.Tests;

/// <summary>
/// The dense kernel's phase-1 verdict runs over fixed tiles of <see cref="KernelTiles.ElementTile"/> entries on every thread: a
/// NaN, an infinity or an entry whose square overflows in any tile (the first, a middle one, the partial last one) must skip the
/// whole step and leave parameters, moments and the step count bit-identical (only the skipped-step count moves), with and without gradient-norm clipping (which forms Σg² instead),
/// for one thread and several.
/// </summary>
[Trait("Category", "Kernels")]
public class DenseGuardTests
{
    public static TheoryData<int, float, double, int> Cases()
    {
        const int d = 5 * KernelTiles.ElementTile + 123;   // five whole tiles and a partial one
        var data = new TheoryData<int, float, double, int>();
        foreach (int at in new[] { 0, KernelTiles.ElementTile - 1, 3 * KernelTiles.ElementTile + 7, d - 1 })
            foreach (float bad in new[] { float.NaN, float.PositiveInfinity, 3e19f })   // 3e19² overflows float
                foreach (double clip in new[] { 0.0, 1.0 })
                    foreach (int threads in new[] { 1, 3 })
                        data.Add(at, bad, clip, threads);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void A_non_finite_entry_in_any_tile_skips_the_step_and_changes_nothing(int at, float bad, double clip, int threads)
    {
        const int d = 5 * KernelTiles.ElementTile + 123;
        var settings = new OptimizerSettings { Ratio = 1, MaxGradientNorm = clip };
        using var o = new CountSketchAdam(settings, [new TensorSpec("W", d)]) { MaxThreads = threads };
        var rng = new Random(5);
        float[][] p = [Enumerable.Range(0, d).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()];
        float[][] g = [Enumerable.Range(0, d).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()];
        Assert.Equal(StepOutcome.Applied, o.Step(1e-2f, p, g));
        float[] before = (float[])p[0].Clone(), m = o.CopyFirstMoment(0), v = o.CopySecondMoment(0);
        long steps = o.StepCount, skipped = o.SkippedSteps;
        g[0][at] = bad;
        Assert.Equal(StepOutcome.SkippedNonFinite, o.Step(1e-2f, p, g));
        Assert.True(before.AsSpan().SequenceEqual(p[0]), "parameters changed");
        Assert.True(m.AsSpan().SequenceEqual(o.CopyFirstMoment(0)), "first moment changed");
        Assert.True(v.AsSpan().SequenceEqual(o.CopySecondMoment(0)), "second moment changed");
        Assert.Equal(steps, o.StepCount);
        Assert.Equal(skipped + 1, o.SkippedSteps);
    }
}
