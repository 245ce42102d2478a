using Collins.Reference;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests.Generated;

/// <summary>
/// β1 = 0.5, β2 = 0.95, ε = 1e-6 in optimizers that are actually stepped (generated, both layouts and
/// both estimates, sketched and dense tensors; and the run-time CountSketchAdam) against the scalar
/// reference at the tolerances the default-setting tests use. The first steps' gradients are tiny
/// (1e-6), so √v̂ is of the order of ε and ε changes the update by a large factor; each test also
/// checks that the reference with a default β1, β2 or ε disagrees with what ran (the mutation an emitter
/// hard-coding 0.9 / 0.999 / 1e-8 would make), so these tests can fail.
/// </summary>
[Trait("Category", "Kernels")]
public class NonDefaultHyperparameterTests
{
    private const float LearningRate = 0.01f;
    private const int Steps = 8;

    private static float[][] StepGradients(IReadOnlyList<TensorSpec> specs, int seed, int step)
    {
        var g = Gradients(specs, seed, step);
        float scale = step <= 4 ? 1e-6f : 1f;        // tiny first: ε matters; then ordinary: β2 and β1 dominate
        foreach (var a in g) for (int i = 0; i < a.Length; i++) a[i] *= scale;
        return g;
    }

    private sealed record Run(float[][] P, float[][] M, float[][] V);

    private static Run RunReference(OptimizerSettings settings, IReadOnlyList<TensorSpec> specs, int seed)
    {
        var reference = new ReferenceOptimizer(settings, specs);
        var p = Parameters(specs, seed);
        for (int s = 1; s <= Steps; s++) reference.Step(LearningRate, p, StepGradients(specs, seed, s));
        return new Run(p, Enumerable.Range(0, specs.Count).Select(reference.FirstMoment).ToArray(),
                          Enumerable.Range(0, specs.Count).Select(reference.SecondMoment).ToArray());
    }

    private static Run RunOptimizer(SketchedOptimizerBase opt, Action<float[][], float[][]> step, IReadOnlyList<TensorSpec> specs, int seed)
    {
        var p = Parameters(specs, seed);
        for (int s = 1; s <= Steps; s++) step(p, StepGradients(specs, seed, s));
        Assert.Equal(Steps, opt.StepCount);
        return new Run(p, Enumerable.Range(0, specs.Count).Select(opt.CopyFirstMoment).ToArray(),
                          Enumerable.Range(0, specs.Count).Select(opt.CopySecondMoment).ToArray());
    }

    /// <summary>
    /// The first mismatch, or null: parameters at 1e-5·max(|e|, 1) (GeneratedTestSupport.AssertClose's bound),
    /// moments at relative·|e| + 1e-6·max|e| with relative 1e-5 for sketches and 3e-5 for dense tensors
    /// (DenseAdamWCpu forms 1 − β in float), as GeneratedOptimizerTests.
    /// </summary>
    private static string? Mismatch(TensorPlan[] plans, Run expected, Run actual)
    {
        for (int t = 0; t < plans.Length; t++)
        {
            for (int i = 0; i < expected.P[t].Length; i++)
            {
                double e = expected.P[t][i], a = actual.P[t][i];
                if (!(Math.Abs(a - e) <= 1e-5 * Math.Max(Math.Abs(e), 1.0)))
                    return $"{plans[t].Name} p[{i}]: expected {e:R}, got {a:R}";
            }
            double relative = plans[t].IsDense ? 3e-5 : 1e-5;
            foreach (var (what, ex, ac) in new[] { ("m", expected.M[t], actual.M[t]), ("v", expected.V[t], actual.V[t]) })
            {
                if (ex.Length != ac.Length) return $"{plans[t].Name} {what}: {ex.Length} vs {ac.Length} values";
                double scale = ex.Length == 0 ? 0 : ex.Max(x => Math.Abs((double)x));
                for (int i = 0; i < ex.Length; i++)
                    if (!(Math.Abs(ac[i] - (double)ex[i]) <= relative * Math.Abs(ex[i]) + 1e-6 * scale))
                        return $"{plans[t].Name} {what}[{i}]: expected {ex[i]:R}, got {ac[i]:R}";
            }
        }
        return null;
    }

    private static void Check(OptimizerSettings settings, IReadOnlyList<TensorSpec> specs, Run actual, int seed)
    {
        Assert.Equal(0.5, settings.Beta1);
        Assert.Equal(0.95, settings.Beta2);
        Assert.Equal(1e-6, settings.Epsilon);
        var plans = specs.Select(s => new TensorPlan(s, settings)).ToArray();
        Assert.Contains(plans, p => p.IsDense);
        Assert.Contains(plans, p => !p.IsDense);
        string? mismatch = Mismatch(plans, RunReference(settings, specs, seed), actual);
        Assert.True(mismatch is null, mismatch);
        // The same comparison must fail against the defaults, or it proves nothing about these settings.
        foreach (var wrong in new[] { settings with { Beta2 = 0.999 }, settings with { Epsilon = 1e-8 }, settings with { Beta1 = 0.9 } })
            Assert.True(Mismatch(plans, RunReference(wrong, specs, seed), actual) is not null,
                $"a reference with β1 {wrong.Beta1}, β2 {wrong.Beta2}, ε {wrong.Epsilon} also agrees: the test cannot see that setting");
    }

    public static TheoryData<string> Variants() => new() { "RotSum", "RotMean", "UniSum", "UniMean" };

    [Theory]
    [MemberData(nameof(Variants))]
    public void Generated_optimizer_with_beta1_05_beta2_095_eps_1e6_matches_reference(string variant)
    {
        (SketchedOptimizerBase opt, OptimizerSettings settings, IReadOnlyList<TensorSpec> specs, SketchLayout layout, SecondMomentEstimate estimate) = variant switch
        {
            "RotSum" => ((SketchedOptimizerBase)new OddHyper.RotSum(), OddHyper.RotSum.DefaultSettings, OddHyper.RotSum.TensorSpecs, SketchLayout.Rotation, SecondMomentEstimate.Sum),
            "RotMean" => (new OddHyper.RotMean(), OddHyper.RotMean.DefaultSettings, OddHyper.RotMean.TensorSpecs, SketchLayout.Rotation, SecondMomentEstimate.Mean),
            "UniSum" => (new OddHyper.UniSum(), OddHyper.UniSum.DefaultSettings, OddHyper.UniSum.TensorSpecs, SketchLayout.Universal, SecondMomentEstimate.Sum),
            _ => (new OddHyper.UniMean(), OddHyper.UniMean.DefaultSettings, OddHyper.UniMean.TensorSpecs, SketchLayout.Universal, SecondMomentEstimate.Mean),
        };
        using (opt)
        {
            Assert.Equal(layout, settings.Layout);
            Assert.Equal(estimate, settings.SecondMoment);
            void Step(float[][] p, float[][] g)
            {
                var outcome = opt switch
                {
                    OddHyper.RotSum o => o.Step(LearningRate, p[0], g[0], p[1], g[1], p[2], g[2]),
                    OddHyper.RotMean o => o.Step(LearningRate, p[0], g[0], p[1], g[1], p[2], g[2]),
                    OddHyper.UniSum o => o.Step(LearningRate, p[0], g[0], p[1], g[1], p[2], g[2]),
                    OddHyper.UniMean o => o.Step(LearningRate, p[0], g[0], p[1], g[1], p[2], g[2]),
                    _ => throw new ArgumentException(variant),
                };
                Assert.Equal(StepOutcome.Applied, outcome);
            }
            Check(settings, specs, RunOptimizer(opt, Step, specs, 31), 31);
        }
    }

    [Theory]
    [InlineData(SketchLayout.Rotation, SecondMomentEstimate.Sum)]
    [InlineData(SketchLayout.Rotation, SecondMomentEstimate.Mean)]
    [InlineData(SketchLayout.Universal, SecondMomentEstimate.Sum)]
    [InlineData(SketchLayout.Universal, SecondMomentEstimate.Mean)]
    public void Run_time_optimizer_with_beta1_05_beta2_095_eps_1e6_matches_reference(SketchLayout layout, SecondMomentEstimate estimate)
    {
        var settings = new OptimizerSettings { Layout = layout, SecondMoment = estimate, Ratio = 8, Beta1 = 0.5, Beta2 = 0.95, Epsilon = 1e-6, WeightDecay = 0.01, DenseThreshold = 100, Seed = 5 };
        var specs = OddHyper.RotSum.TensorSpecs;   // W 3001 and V 40×13 sketched, B 50 dense
        using var opt = new CountSketchAdam(settings, specs);
        Check(settings, specs, RunOptimizer(opt, (p, g) => Assert.Equal(StepOutcome.Applied, opt.Step(LearningRate, p, g)), specs, 32), 32);
    }
}
