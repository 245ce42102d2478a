using Collins;

namespace TinyLm.Tests;

/// <summary>
/// The library's Adafactor-shaped setting (factored v, β1 0, update clipping 1, β̂2 = 1 − t^−0.8, every tensor factored:
/// <see cref="OptimizerSettings.DenseThreshold"/> 0, so a vector is an n × 1 matrix whose factored v̂ is its exact v) against the
/// Adafactor anchor written from the paper (<see cref="Adafactor"/>, in double, ε1 = 1e-30 added to g²) on TinyLm's shapes:
/// with ε = 1e-30 the two differ only by float rounding, step after step.
/// </summary>
public sealed class AdafactorEquivalenceTests
{
    [Fact]
    public void Factored_setting_with_clipping_schedule_and_every_tensor_factored_steps_like_the_Adafactor_anchor()
    {
        var specs = TinyLmModel.Config.Specs();
        var settings = new OptimizerSettings
        {
            SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0, UpdateClipping = 1, Beta2Schedule = 0.8, DenseThreshold = 0, Epsilon = 1e-30,
        };
        var collins = new CountSketchAdam(settings, specs);
        var anchor = new Adafactor(specs);
        var rng = new Random(11);
        float[][] pa = specs.Select(s => Enumerable.Range(0, s.Shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()).ToArray();
        float[][] pb = pa.Select(p => (float[])p.Clone()).ToArray();
        double worst = 0;
        for (int t = 1; t <= 20; t++)
        {
            // Gradients of varied scale per tensor and per row, some entries 0 (as for unseen tokens).
            var g = specs.Select(s => Enumerable.Range(0, s.Shape.Aggregate(1, (a, b) => a * b)).Select(i => i % 7 == 3 ? 0f : (float)((rng.NextDouble() - 0.5) * Math.Pow(10, -1 - (i % 5)))).ToArray()).ToArray();
            collins.Step(1e-2f, pa, g);
            anchor.Step(1e-2f, pb, g);
            for (int k = 0; k < pa.Length; k++)
                for (int i = 0; i < pa[k].Length; i++)
                {
                    double d = Math.Abs(pa[k][i] - pb[k][i]);
                    worst = Math.Max(worst, d);
                    Assert.True(d <= 1e-5, $"step {t}, {specs[k].Name}[{i}]: Collins {pa[k][i]} vs anchor {pb[k][i]}");
                }
        }
        Assert.True(worst > 0, "the two implementations should differ by rounding at least once (else the test compares one with itself)");
    }
}
