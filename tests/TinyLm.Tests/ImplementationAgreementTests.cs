using Collins;
using Xunit.Abstractions;

namespace TinyLm.Tests;

/// <summary>
/// Every implementation of a Collins variant the trainer may pick (the generated type for the declared shapes, the run-time
/// CountSketchAdam for any others) must take the same steps as the sample's reference, and the two library paths the same
/// bits (they run the same kernels).
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

    [Fact]
    public void Generated_and_runtime_implementations_of_every_variant_agree_with_the_reference_and_each_other()
    {
        var specs = TinyLmModel.Config.Specs();
        // The variants TinyLmModel declares (Model.cs), each with its generated type and the run-time optimizer: if the
        // catalogue listed fewer, this test would otherwise compare less and still pass.
        string[] variants = ["C32", "C32Mean", "C32Universal", "C32NoMomentum", "C32MeanNoMomentum", "C1", "C4", "C8", "C64"];
        Assert.Equal(variants, OptimizerCatalog.Variants.Select(v => v.Name));
        var compared = new List<string>();
        foreach (var variant in OptimizerCatalog.Variants)
        {
            var reference = Run(new ReferenceCountSketchAdam(variant.Name, variant.Settings, specs), 3);

            var gen = variant.CreateGenerated();
            Assert.Equal("generated TinyLmModel." + variant.Name, gen.Implementation);
            var generated = Run(gen, 3);
            AssertClose(reference, generated, $"generated {variant.Name}");
            compared.Add("generated " + variant.Name);

            var runtime = Run(OptimizerCatalog.CreateRuntime(variant.Name, variant.Settings, specs), 3);
            AssertClose(reference, runtime, $"runtime {variant.Name}");
            compared.Add("runtime " + variant.Name);

            // Same settings, same kernels: the generated type and CountSketchAdam agree to the bit.
            for (int t = 0; t < generated.Length; t++) Assert.Equal(runtime[t], generated[t]);
        }
        output.WriteLine($"{compared.Count} generated/run-time implementations compared with the reference.");
        Assert.Equal(variants.SelectMany(v => new[] { "generated " + v, "runtime " + v }), compared);
    }

    [Fact]
    public void Reference_at_ratio_1_is_exactly_dense_AdamW()
    {
        var specs = TinyLmModel.Config.Specs();
        var dense = Run(new DenseAdamW(specs), 3);
        var r1 = Run(new ReferenceCountSketchAdam("R1", new OptimizerSettings { Ratio = 1 }, specs), 3);
        for (int t = 0; t < dense.Length; t++) Assert.Equal(dense[t], r1[t]);
    }

    [Fact]
    public void Reference_sketch_follows_the_algorithm_on_one_coordinate()
    {
        // One step from zero moments: m = (1−β1)·Σσg, v = (1−β2)·Σg² per bucket; with bias correction
        // p − lr·σ·(Σσg)/(√(Σg²) [/√occ] + ε) for every entry.
        var spec = new TensorSpec("W", [64, 128]);
        foreach (var sm in new[] { SecondMomentEstimate.Sum, SecondMomentEstimate.Mean })
        foreach (var layout in new[] { SketchLayout.Rotation, SketchLayout.Universal })
        {
            var settings = new OptimizerSettings { Ratio = 16, SecondMoment = sm, Layout = layout };
            var plan = new TensorPlan(spec, settings);
            var rng = new SplitMix(9);
            var p = Enumerable.Range(0, plan.Length).Select(_ => rng.NextGaussian()).ToArray();
            var g = Enumerable.Range(0, plan.Length).Select(_ => rng.NextGaussian()).ToArray();
            var before = (float[])p.Clone();
            new ReferenceCountSketchAdam("W", settings, [spec]).Step(0.1f, [p], [g]);
            var occ = plan.Occupancy();
            for (int i = 0; i < plan.Length; i += 97)
            {
                int b = plan.Bucket(i);
                double sumM = 0, sumV = 0;
                for (int j = 0; j < plan.Length; j++)
                    if (plan.Bucket(j) == b) { sumM += plan.Sign(j) * g[j]; sumV += (double)g[j] * g[j]; }
                double denom = Math.Sqrt(sm == SecondMomentEstimate.Mean ? sumV / occ[b] : sumV) + 1e-8;
                double expected = before[i] - 0.1 * plan.Sign(i) * sumM / denom;
                Assert.True(Math.Abs(expected - p[i]) < 1e-4, $"{sm} {layout} [{i}]: expected {expected}, got {p[i]}");
            }
        }
    }
}
