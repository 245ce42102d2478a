using Collins.Tests.Generated;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

/// <summary>
/// The run-time optimizer built from a generated optimizer's own <c>DefaultSettings</c> and
/// <c>TensorSpecs</c> follows the same trajectory bit for bit: both derive their plans from HashDerivation and run the
/// same kernels on the same tiles, so any disagreement in hashing, ragged handling or update order shows here.
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
            // One kernel library and one tile table: bit for bit, not within a tolerance (per-tensor ratio overrides included).
            for (int n = 0; n < p.Length; n++)
            {
                Assert.Equal(p[n].Select(BitConverter.SingleToInt32Bits), q[n].Select(BitConverter.SingleToInt32Bits));
                Assert.Equal(generated.CopyFirstMoment(n).Select(BitConverter.SingleToInt32Bits), runtime.CopyFirstMoment(n).Select(BitConverter.SingleToInt32Bits));
                Assert.Equal(generated.CopySecondMoment(n).Select(BitConverter.SingleToInt32Bits), runtime.CopySecondMoment(n).Select(BitConverter.SingleToInt32Bits));
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
