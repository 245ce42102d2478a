using Collins;
using Xunit.Abstractions;

namespace TinyLm.Tests;

/// <summary>
/// Every implementation of a Collins variant the trainer may pick (the generated type for the declared shapes, the run-time
/// CountSketchAdam for any others) must take the same steps as the library's scalar reference (<c>Collins.Reference</c>,
/// written from the formulas and tested against them in Collins.Tests), and the two library paths the same bits (they run
/// the same kernels).
/// </summary>
public class ImplementationAgreementTests(ITestOutputHelper output)
{
    private static (float[][] P, float[][][] Grads) Problem(int steps)
    {
        var specs = TinyLmModel.Config.Specs();
        var rng = new SplitMix(42);
        var p = specs.Select(s => Enumerable.Range(0, ModelConfig.Length(s)).Select(_ => rng.NextGaussian()).ToArray()).ToArray();
        var g = Enumerable.Range(0, steps).Select(_ => p.Select(t => t.Select(_ => 0.01f * rng.NextGaussian()).ToArray()).ToArray()).ToArray();
        return (p, g);
    }

    /// <summary>
    /// Steps <paramref name="opt"/> over the problem in the buffers it hands out (a generated optimizer steps only its own
    /// model and gradient holder), as the trainer does; the test copies the problem in and the result out.
    /// </summary>
    private static float[][] Run(ITrainerOptimizer opt, int steps)
    {
        var (p, grads) = Problem(steps);
        var buffers = opt.BuffersFor(TinyLmModel.Config);
        for (int t = 0; t < p.Length; t++) p[t].CopyTo(buffers.Parameters[t], 0);
        for (int s = 0; s < steps; s++)
        {
            for (int t = 0; t < p.Length; t++) grads[s][t].CopyTo(buffers.Gradients[t], 0);
            opt.Step(1e-2f, buffers.Parameters, buffers.Gradients);
        }
        return buffers.Parameters.Select(a => (float[])a.Clone()).ToArray();
    }

    private static void AssertClose(float[][] expected, float[][] actual, string what)
    {
        for (int t = 0; t < expected.Length; t++)
            for (int i = 0; i < expected[t].Length; i++)
                Assert.True(Math.Abs(expected[t][i] - actual[t][i]) <= 1e-5f * (1 + Math.Abs(expected[t][i])),
                    $"{what}: tensor {t} [{i}] {expected[t][i]} vs {actual[t][i]}");
    }

    /// <summary>
    /// As <see cref="AssertClose"/> for a quantised first moment: a code is a rounding of m, so where the reference's double and
    /// the kernels' float arithmetic put m on two sides of a rounding boundary they store neighbouring codes and that entry
    /// parts ways (Collins.Tests' QuantizedMomentTests checks the codes themselves); at most 1 % of the entries of a tensor may.
    /// </summary>
    private static void AssertMostlyClose(float[][] expected, float[][] actual, string what)
    {
        for (int t = 0; t < expected.Length; t++)
        {
            int parted = 0;
            for (int i = 0; i < expected[t].Length; i++)
                if (!(Math.Abs(expected[t][i] - actual[t][i]) <= 1e-5f * (1 + Math.Abs(expected[t][i])))) parted++;
            Assert.True(parted <= expected[t].Length / 100, $"{what}: tensor {t}: {parted} of {expected[t].Length} entries differ");
        }
    }

    [Fact]
    public void Generated_and_runtime_implementations_of_every_variant_agree_with_the_reference_and_each_other()
    {
        var specs = TinyLmModel.Config.Specs();
        // The variants TinyLmModel declares (Model.cs), each with its generated type and the run-time optimizer: if the
        // catalogue listed fewer, this test would otherwise compare less and still pass.
        string[] variants = ["C32", "C32Mean", "C32Universal", "C32NoMomentum", "C32MeanNoMomentum", "C1", "C4", "C8", "C64", "Factored", "FactoredClip", "FactoredSchedule", "FactoredClipAll", "FactoredQ4"];
        Assert.Equal(variants, OptimizerCatalog.Variants.Select(v => v.Name));
        var compared = new List<string>();
        foreach (var variant in OptimizerCatalog.Variants)
        {
            var reference = Run(new ScalarReference(variant.Settings, specs), 3);

            var gen = variant.CreateGenerated();
            Assert.Equal("generated TinyLmModel." + variant.Name, gen.Implementation);
            var generated = Run(gen, 3);
            Action<float[][], float[][], string> close = variant.Settings.FirstMoment == FirstMomentStorage.Sketch ? AssertClose : AssertMostlyClose;
            close(reference, generated, $"generated {variant.Name}");
            compared.Add("generated " + variant.Name);

            var runtime = Run(OptimizerCatalog.CreateRuntime(variant.Name, variant.Settings, specs), 3);
            close(reference, runtime, $"runtime {variant.Name}");
            compared.Add("runtime " + variant.Name);

            // Same settings, same kernels: the generated type and CountSketchAdam agree to the bit.
            for (int t = 0; t < generated.Length; t++) Assert.Equal(runtime[t], generated[t]);
        }
        output.WriteLine($"{compared.Count} generated/run-time implementations compared with the reference.");
        Assert.Equal(variants.SelectMany(v => new[] { "generated " + v, "runtime " + v }), compared);
    }

    /// <summary>The library's scalar reference as a trainer optimizer (tests only: the trainer never picks it).</summary>
    private sealed class ScalarReference(OptimizerSettings settings, IReadOnlyList<TensorSpec> specs) : ITrainerOptimizer
    {
        private readonly Collins.Reference.ReferenceOptimizer _inner = new(settings, specs);
        public string Name => "reference";
        public string Implementation => "Collins.Reference.ReferenceOptimizer";
        public long StateBytes => -1;
        public void Step(float learningRate, float[][] parameters, float[][] gradients) => _inner.Step(learningRate, parameters, gradients);
    }
}
