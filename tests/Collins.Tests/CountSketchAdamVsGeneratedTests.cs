using Collins.Tests.Generated;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

/// <summary>
/// The run-time optimizer built from a generated optimizer's own <c>DefaultSettings</c> and
/// <c>TensorSpecs</c> follows the same trajectory: both derive their plans from HashDerivation, so any
/// disagreement in hashing, ragged handling or update order shows here.
/// </summary>
public class CountSketchAdamVsGeneratedTests
{
    private static int Len(TensorSpec s) => s.Shape.Aggregate(1, (a, b) => a * b);

    private static void Compare(IReadOnlyList<TensorSpec> specs, OptimizerSettings settings, Func<float[][], float[][], StepOutcome> generatedStep, SketchedOptimizerBase generated)
    {
        using var runtime = new CountSketchAdam(settings, specs);
        var rng = new Random(41);
        var p = specs.Select(s => Uniform(rng, Len(s))).ToArray();
        var q = Clone(p);
        for (int step = 1; step <= 5; step++)
        {
            var g = specs.Select(s => Normal(rng, Len(s))).ToArray();
            Assert.Equal(StepOutcome.Applied, generatedStep(p, g));
            Assert.Equal(StepOutcome.Applied, runtime.Step(1e-2f, q, g));
            for (int n = 0; n < p.Length; n++)
            {
                AssertClose(q[n], p[n], 1e-5, 0.1, $"step {step} tensor {specs[n].Name} p");
                // 3e-5, not 1e-5: at the time of writing the generated kernels form 1 − β2 in float
                // (1 − 0.999f is 1.3e-5 relative off 0.001); CountSketchAdam forms it in double.
                AssertClose(runtime.CopySecondMoment(n), generated.CopySecondMoment(n), 3e-5, 1e-30, $"step {step} tensor {specs[n].Name} v");
            }
        }
        Assert.Equal(runtime.StateBytes, generated.StateBytes);
    }

    [Fact]
    public void Runtime_optimizer_matches_generated_Rotation_optimizers()
    {
        using var a = new RaggedRotation.Optimizer();
        Compare(RaggedRotation.Optimizer.TensorSpecs, RaggedRotation.Optimizer.DefaultSettings,
                (p, g) => a.Step(1e-2f, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4], p[5], g[5]), a);
        using var b = new RaggedRotation.MeanNoMomentum();
        Compare(RaggedRotation.MeanNoMomentum.TensorSpecs, RaggedRotation.MeanNoMomentum.DefaultSettings,
                (p, g) => b.Step(1e-2f, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4], p[5], g[5]), b);
    }

    [Fact]
    public void Runtime_optimizer_matches_generated_Universal_optimizers()
    {
        using var a = new RaggedUniversal.Optimizer();
        Compare(RaggedUniversal.Optimizer.TensorSpecs, RaggedUniversal.Optimizer.DefaultSettings,
                (p, g) => a.Step(1e-2f, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3]), a);
        using var b = new RaggedUniversal.MeanNoMomentum();
        Compare(RaggedUniversal.MeanNoMomentum.TensorSpecs, RaggedUniversal.MeanNoMomentum.DefaultSettings,
                (p, g) => b.Step(1e-2f, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3]), b);
    }
}
