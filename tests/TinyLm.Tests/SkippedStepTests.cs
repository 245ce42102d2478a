using Collins;

namespace TinyLm.Tests;

/// <summary>A Collins optimizer that refuses a step (a non-finite gradient) says so through the trainer's interface and results.</summary>
public sealed class SkippedStepTests
{
    [Fact]
    public void A_refused_step_is_counted_and_reported_and_a_baseline_reports_none()
    {
        var specs = TinyLmModel.Config.Specs();
        var collins = OptimizerCatalog.CreateRuntime("Factored", new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored }, specs);
        var p = specs.Select(s => new float[s.Shape.Aggregate(1, (a, b) => a * b)]).ToArray();
        var g = p.Select(x => Enumerable.Repeat(1e-3f, x.Length).ToArray()).ToArray();
        collins.Step(1e-2f, p, g);
        Assert.Equal(0, collins.SkippedSteps);
        g[3][5] = float.NaN;
        var before = p.Select(x => (float[])x.Clone()).ToArray();
        collins.Step(1e-2f, p, g);
        Assert.Equal(1, collins.SkippedSteps);
        for (int t = 0; t < p.Length; t++) Assert.Equal(before[t], p[t]);   // nothing changed

        Assert.Equal(0, ((ITrainerOptimizer)new DenseAdamW(specs)).SkippedSteps);
        var result = new RunResult("Factored", "x", 1e-2f, 0, 1, 2.0, 2.0, 0, 0, 0, [], [], SkippedSteps: 1);
        Assert.Equal("warning: Factored skipped 1 of 10 steps (non-finite gradients; those batches did not train)", result.SkippedWarning(10));
        Assert.Null((result with { SkippedSteps = 0 }).SkippedWarning(10));
    }
}
