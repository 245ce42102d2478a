using Collins;

namespace TinyLm.Tests;

/// <summary>AdamWClip: dense AdamW after clip_grad_norm_(1.0), checked against plain AdamW stepped on gradients clipped by hand.</summary>
public class ClippedAdamWTests
{
    private static readonly TensorSpec[] Specs = [new("W", new[] { 3, 5 }), new("B", 7)];

    private static float[][] Gradients(float scale, int seed)
    {
        var rng = new Random(seed);
        return Specs.Select(s => Enumerable.Range(0, s.Shape.Aggregate(1, (a, b) => a * b)).Select(_ => scale * (float)(rng.NextDouble() * 2 - 1)).ToArray()).ToArray();
    }

    private static float[][] Parameters() => Specs.Select(s => Enumerable.Range(0, s.Shape.Aggregate(1, (a, b) => a * b)).Select(i => 0.1f * i).ToArray()).ToArray();

    /// <summary>The norm and the coefficient as clip_grad_norm_ defines them, computed here independently of the optimizer.</summary>
    private static float[][] ClippedByHand(float[][] g, double bound)
    {
        double norm = Math.Sqrt(g.SelectMany(x => x).Sum(x => (double)x * x));
        double c = bound / (norm + 1e-6);
        return c < 1 ? g.Select(x => x.Select(v => v * (float)c).ToArray()).ToArray() : g.Select(x => (float[])x.Clone()).ToArray();
    }

    [Theory]
    [InlineData(10f)]    // ‖g‖ ≈ 20: clipped every step
    [InlineData(0.01f)]  // ‖g‖ ≈ 0.02: never clipped, so AdamWClip is plain AdamW
    public void Steps_equal_plain_AdamW_on_gradients_clipped_by_hand(float scale)
    {
        var clipped = new DenseAdamW(Specs, name: "AdamWClip", clipNorm: 1.0);
        var plain = new DenseAdamW(Specs);
        var p1 = Parameters();
        var p2 = Parameters();
        for (int step = 1; step <= 5; step++)
        {
            var g = Gradients(scale, step);
            var expected = ClippedByHand(g, 1.0);
            plain.Step(1e-2f, p2, expected);
            clipped.Step(1e-2f, p1, g);
            Assert.Equal(expected.SelectMany(x => x), g.SelectMany(x => x));   // clipped in place, as clip_grad_norm_ does
        }
        Assert.Equal(p2.SelectMany(x => x), p1.SelectMany(x => x));
        if (scale > 1) Assert.True(clipped.LastGradientNorm > 1.5, $"norm {clipped.LastGradientNorm}: the test did not clip");
        else Assert.True(clipped.LastGradientNorm < 1, $"norm {clipped.LastGradientNorm}");
    }

    [Theory]
    [InlineData(10f)]    // ‖g‖ ≈ 20 on even steps: clipped there
    [InlineData(0.01f)]  // never clipped
    public void The_librarys_dense_path_with_MaxGradientNorm_matches_AdamWClip(float scale)
    {
        // Ratio 1: every tensor dense, exact AdamW; MaxGradientNorm clips inside the step instead of in place. The two differ
        // only in roundings (AdamWClip forms 1 − β in float and multiplies g first), far below the tolerance.
        using var library = new CountSketchAdam(new OptimizerSettings { Ratio = 1, MaxGradientNorm = 1.0 }, Specs);
        var sample = new DenseAdamW(Specs, name: "AdamWClip", clipNorm: 1.0);
        var p1 = Parameters();
        var p2 = Parameters();
        int clipped = 0;
        for (int step = 1; step <= 5; step++)
        {
            var g = Gradients(step % 2 == 0 ? scale : scale / 1000, step);   // clipped and unclipped steps alternate (Adam is not blind to that)
            var copy = g.Select(x => (float[])x.Clone()).ToArray();
            Assert.Equal(StepOutcome.Applied, library.Step(1e-2f, p1, g));
            Assert.Equal(copy.SelectMany(x => x), g.SelectMany(x => x));   // the library does not write the gradients
            sample.Step(1e-2f, p2, copy);
            Assert.Equal(sample.LastGradientNorm, library.LastGradientNorm, 1e-6 * sample.LastGradientNorm);
            if (library.LastGradientNorm > 1.5) clipped++;
        }
        var a = p1.SelectMany(x => x).ToArray();
        var b = p2.SelectMany(x => x).ToArray();
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(a[i] - b[i]) <= 1e-5 * Math.Max(1, Math.Abs(b[i])), $"entry {i}: {a[i]:R} vs {b[i]:R}");
        Assert.Equal(scale > 1 ? 2 : 0, clipped);   // steps 2 and 4
    }

    [Fact]
    public void Clipping_changes_the_step_when_the_norm_is_large()
    {
        // Adam is nearly scale-invariant, but not from the second step on when the scale changes between steps: a large
        // gradient after small ones moves the parameters less when clipped.
        var clipped = new DenseAdamW(Specs, name: "AdamWClip", clipNorm: 1.0);
        var plain = new DenseAdamW(Specs);
        var p1 = Parameters();
        var p2 = Parameters();
        clipped.Step(1e-2f, p1, Gradients(0.01f, 1));
        plain.Step(1e-2f, p2, Gradients(0.01f, 1));
        clipped.Step(1e-2f, p1, Gradients(100f, 2));
        plain.Step(1e-2f, p2, Gradients(100f, 2));
        Assert.NotEqual(p2.SelectMany(x => x), p1.SelectMany(x => x));
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void A_bad_bound_is_refused(double bound)
        => Assert.Throws<ArgumentOutOfRangeException>(() => new DenseAdamW(Specs, clipNorm: bound));

    [Fact]
    public void The_catalogue_and_the_sweep_know_it()
    {
        var optimizer = OptimizerCatalog.Create("AdamWClip", TinyLmModel.Config);
        Assert.Equal("AdamWClip", optimizer.Name);
        Assert.Contains("clipping at 1", optimizer.Implementation, StringComparison.Ordinal);
        Assert.Contains(Sweep.Configurations(), c => c.Name == "AdamWClip" && c.Settings is null);
    }
}
