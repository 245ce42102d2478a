using Collins.Tests.Generated;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests;

/// <summary>
/// One kernel library: a generated optimizer and the run-time <see cref="CountSketchAdam"/> built from its own
/// <c>DefaultSettings</c> and <c>TensorSpecs</c> run the same kernels on the same tiles with the same constants, so over
/// 20 steps their parameters and both moments agree bit for bit, for every layout × estimate × β1 (no tolerance).
/// </summary>
[Trait("Category", "Kernels")]
public class GeneratedVsRuntimeBitIdenticalTests
{
    public static TheoryData<string> Variants() => new()
    {
        "RotSumM", "RotSumNoM", "RotMeanM", "RotMeanNoM", "UniSumM", "UniSumNoM", "UniMeanM", "UniMeanNoM",
    };

    private static (SketchedOptimizerBase Optimizer, OptimizerSettings Settings, IReadOnlyList<TensorSpec> Specs) Create(string name) => name switch
    {
        "RotSumM" => (new LayoutMatrix.RotSumM(), LayoutMatrix.RotSumM.DefaultSettings, LayoutMatrix.RotSumM.TensorSpecs),
        "RotSumNoM" => (new LayoutMatrix.RotSumNoM(), LayoutMatrix.RotSumNoM.DefaultSettings, LayoutMatrix.RotSumNoM.TensorSpecs),
        "RotMeanM" => (new LayoutMatrix.RotMeanM(), LayoutMatrix.RotMeanM.DefaultSettings, LayoutMatrix.RotMeanM.TensorSpecs),
        "RotMeanNoM" => (new LayoutMatrix.RotMeanNoM(), LayoutMatrix.RotMeanNoM.DefaultSettings, LayoutMatrix.RotMeanNoM.TensorSpecs),
        "UniSumM" => (new LayoutMatrix.UniSumM(), LayoutMatrix.UniSumM.DefaultSettings, LayoutMatrix.UniSumM.TensorSpecs),
        "UniSumNoM" => (new LayoutMatrix.UniSumNoM(), LayoutMatrix.UniSumNoM.DefaultSettings, LayoutMatrix.UniSumNoM.TensorSpecs),
        "UniMeanM" => (new LayoutMatrix.UniMeanM(), LayoutMatrix.UniMeanM.DefaultSettings, LayoutMatrix.UniMeanM.TensorSpecs),
        "UniMeanNoM" => (new LayoutMatrix.UniMeanNoM(), LayoutMatrix.UniMeanNoM.DefaultSettings, LayoutMatrix.UniMeanNoM.TensorSpecs),
        _ => throw new ArgumentException(name),
    };

    private static StepOutcome StepGenerated(SketchedOptimizerBase o, float lr, float[][] p, float[][] g) => o switch
    {
        LayoutMatrix.RotSumM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4]),
        LayoutMatrix.RotSumNoM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4]),
        LayoutMatrix.RotMeanM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4]),
        LayoutMatrix.RotMeanNoM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4]),
        LayoutMatrix.UniSumM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4]),
        LayoutMatrix.UniSumNoM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4]),
        LayoutMatrix.UniMeanM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4]),
        LayoutMatrix.UniMeanNoM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4]),
        _ => throw new ArgumentException(o.GetType().Name),
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void Generated_and_runtime_optimizers_are_bit_identical_over_20_steps(string variant)
    {
        var (generated, settings, specs) = Create(variant);
        using var _ = generated;
        using var runtime = new CountSketchAdam(settings, specs);
        Assert.True(runtime.Tensors[4].Length >= Collins.Kernels.CpuTuning.Default.NonTemporalMinLength);   // large enough for non-temporal sums (default tuning)
        var p = Parameters(specs, 17);
        var q = Clone(p);
        for (int step = 1; step <= 20; step++)
        {
            var g = Gradients(specs, 17, step);
            float lr = 1e-3f * (1 + step % 3);
            // Different thread counts on the two sides: neither may change a bit.
            generated.MaxThreads = 1 + step % 3;
            runtime.MaxThreads = 2;
            Assert.Equal(StepOutcome.Applied, StepGenerated(generated, lr, p, g));
            Assert.Equal(StepOutcome.Applied, runtime.Step(lr, q, g));
            for (int t = 0; t < specs.Count; t++)
            {
                string what = $"{variant} step {step} tensor {specs[t].Name}";
                AssertBits(p[t], q[t], what + " p");
                AssertBits(generated.CopyFirstMoment(t), runtime.CopyFirstMoment(t), what + " m");
                AssertBits(generated.CopySecondMoment(t), runtime.CopySecondMoment(t), what + " v");
            }
        }
        // Not vacuous: the parameters moved.
        var start = Parameters(specs, 17);
        Assert.Contains(Enumerable.Range(0, specs.Count), t => !start[t].SequenceEqual(p[t]));
    }

    private static void AssertBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}[{i}]: generated {expected[i]:R}, run-time {actual[i]:R}");
    }
}
