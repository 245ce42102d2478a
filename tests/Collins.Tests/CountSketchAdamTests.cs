using Collins.Reference;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

[Trait("Category", "Kernels")]
public class CountSketchAdamTests
{
    /// <summary>Ragged and exact shapes; one dense tensor (below DenseThreshold); one big enough for several tiles.</summary>
    internal static TensorSpec[] MixedSpecs(bool big = true)
    {
        var list = new List<TensorSpec>
        {
            new("W1", new[] { 10, 100 }, Ratio: 3, Sketching: TensorSketching.Sketched),   // k 334, rows 3, last row 332
            new("W2", new[] { 7, 13 }, Ratio: 4, Sketching: TensorSketching.Sketched),     // k 23, rows 4, last row 22
            new("W3", new[] { 5000 }, Sketching: TensorSketching.Sketched),                // ratio 32: k 157, rows 32, last row 133
            new("W4", new[] { 64, 64 }, Ratio: 8),                                         // exact: k 512, rows 8
            new("bias", new[] { 50 }),                                                     // dense (below threshold)
            new("one", new[] { 1 }, Sketching: TensorSketching.Sketched),                  // k 1
        };
        if (big) list.Add(new("Big", new[] { 120001 }, Ratio: 4));                        // k 30001, rows 4, last row 29998: several tiles
        return list.ToArray();
    }

    public static TheoryData<SketchLayout, SecondMomentEstimate, double, double> Configurations()
    {
        var data = new TheoryData<SketchLayout, SecondMomentEstimate, double, double>();
        foreach (var layout in new[] { SketchLayout.Rotation, SketchLayout.Universal })
            foreach (var est in new[] { SecondMomentEstimate.Sum, SecondMomentEstimate.Mean })
            {
                data.Add(layout, est, 0.9, 0.0);
                data.Add(layout, est, 0.0, 0.01);
            }
        data.Add(SketchLayout.Rotation, SecondMomentEstimate.Sum, 0.9, 0.1);
        data.Add(SketchLayout.Universal, SecondMomentEstimate.Mean, 0.5, 0.1);
        return data;
    }

    [Theory]
    [MemberData(nameof(Configurations))]
    public void CountSketchAdam_matches_reference_over_10_steps(SketchLayout layout, SecondMomentEstimate estimate, double beta1, double wd)
    {
        var settings = new OptimizerSettings { Layout = layout, SecondMoment = estimate, Beta1 = beta1, WeightDecay = wd, Seed = 3 };
        var specs = MixedSpecs();
        using var opt = new CountSketchAdam(settings, specs);
        var reference = new ReferenceOptimizer(settings, specs);
        var rng = new Random(17);
        var p = reference.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        var q = Clone(p);
        var start = Clone(p);
        for (int step = 1; step <= 10; step++)
        {
            var g = reference.Tensors.Select(t => Normal(rng, t.Length, step % 3 == 0 ? 3.0 : 0.5)).ToArray();
            Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, p, g));
            reference.Step(1e-2f, q, g);
            for (int n = 0; n < p.Length; n++)
            {
                string name = $"step {step} tensor {reference.Tensors[n].Name}";
                // Dense tensors go through DenseAdamWCpu, which forms 1 − β2 in float (1 − 0.999f is
                // 1.3e-5 relative off 0.001): their v carries that error, so it gets 3e-5 there, and
                // Parameters (drawn from U(−1, 1)) are compared relative to the parameter scale, floor
                // 0.1: a bucket whose signed sum cancels carries float-accumulation error into m̂/√v̂
                // (amplified by √occupancy under Mean); the moments themselves are checked tightly below.
                bool dense = reference.Tensors[n].IsDense;
                AssertClose(q[n], p[n], 1e-5, 0.1, name + " p");
                float[] m = opt.CopyFirstMoment(n), v = opt.CopySecondMoment(n);
                AssertClose(reference.SecondMoment(n), v, dense ? 3e-5 : 1e-5, 1e-30, name + " v");
                // m is a signed sum that cancels: measure its float-accumulation error against the
                // tensor's largest bucket rather than each (possibly tiny) bucket.
                var mRef = reference.FirstMoment(n);
                double mScale = mRef.Length == 0 ? 1 : mRef.Max(x => Math.Abs(x));
                AssertClose(mRef, m, 1e-5, 0.05 * mScale, name + " m");
            }
        }
        Assert.Equal(10, opt.StepCount);
        Assert.Equal(0, opt.SkippedSteps);
        for (int n = 0; n < p.Length; n++) Assert.NotEqual(start[n], p[n]);
    }

    [Theory]
    [InlineData(SketchLayout.Rotation)]
    [InlineData(SketchLayout.Universal)]
    public void Results_are_bit_identical_for_any_MaxThreads(SketchLayout layout)
    {
        // Parameters and both moments, MaxThreads 1, 2, 3, 7, and pool workers must have run tiles.
        var settings = new OptimizerSettings { Layout = layout, WeightDecay = 0.01 };
        var specs = MixedSpecs();
        Generated.ThreadCountDeterminism.AssertBitIdentical(threads =>
        {
            using var opt = new CountSketchAdam(settings, specs) { MaxThreads = threads };
            var rng = new Random(5);
            var p = opt.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
            for (int step = 0; step < 3; step++)
                Assert.Equal(StepOutcome.Applied, opt.Step(1e-3f, p, opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray()));
            return Generated.ThreadCountDeterminism.Capture(opt, p);
        });
    }

    [Theory]
    [InlineData(0.9)]
    [InlineData(0.0)]
    public void Universal_phase_1_split_over_cores_matches_the_reference_for_any_MaxThreads(double beta1)
    {
        // Above UniversalCpu.SplitThreshold phase 1 runs one bucket-range tile per core (TileBuffers.TileCount):
        // every thread count must give the same bits, and those must be the algorithm's.
        var settings = new OptimizerSettings { Layout = SketchLayout.Universal, Beta1 = beta1, Seed = 11 };
        var specs = new[] { new TensorSpec("Wide", new[] { Kernels.UniversalCpu.SplitThreshold + 7 }) };
        var reference = new ReferenceOptimizer(settings, specs);
        var rng = new Random(23);
        var p0 = Uniform(rng, specs[0].Shape[0]);
        var grads = Enumerable.Range(0, 2).Select(_ => Normal(rng, p0.Length)).ToArray();
        var q = new[] { (float[])p0.Clone() };
        foreach (var g in grads) reference.Step(1e-2f, q, new[] { g });
        float[]? first = null;
        foreach (int threads in new[] { 1, 2, 3 })
        {
            using var opt = new CountSketchAdam(settings, specs) { MaxThreads = threads };
            var p = new[] { (float[])p0.Clone() };
            foreach (var g in grads) Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, p, new[] { g }));
            AssertClose(q[0], p[0], 1e-5, 0.1, $"threads {threads} p");
            if (first is null) first = p[0];
            else Assert.Equal(first, p[0]);
        }
    }

    [Fact]
    public void Memory_overload_accepts_slices_of_larger_buffers()
    {
        var settings = new OptimizerSettings { Ratio = 4 };
        var specs = new[] { new TensorSpec("a", new[] { 100 }, Sketching: TensorSketching.Sketched), new TensorSpec("b", new[] { 30 }) };
        using var opt = new CountSketchAdam(settings, specs);
        var reference = new ReferenceOptimizer(settings, specs);
        var rng = new Random(9);
        var flatP = Uniform(rng, 130); var flatG = Normal(rng, 130);
        var q = new[] { flatP[..100], flatP[100..] };
        opt.Step(0.01f, new Memory<float>[] { flatP.AsMemory(0, 100), flatP.AsMemory(100, 30) },
                 new ReadOnlyMemory<float>[] { flatG.AsMemory(0, 100), flatG.AsMemory(100, 30) });
        reference.Step(0.01f, q, new[] { flatG[..100], flatG[100..] });
        AssertClose(q[0], flatP.AsSpan(0, 100), 1e-5, 1e-2, "a");
        AssertClose(q[1], flatP.AsSpan(100, 30), 1e-5, 1e-2, "b");
    }

    [Fact]
    public void State_is_as_small_as_the_design_says()
    {
        var settings = new OptimizerSettings { Ratio = 32 };
        using var opt = new CountSketchAdam(settings, new[] { new TensorSpec("w", new[] { 128, 784 }), new TensorSpec("b", new[] { 128 }) });
        long k = (128 * 784 + 31) / 32;
        Assert.Equal((2 * k + 2 * 128) * 4, opt.StateBytes);
        using var noM = new CountSketchAdam(settings with { Beta1 = 0 }, new[] { new TensorSpec("w", new[] { 128, 784 }) });
        Assert.Equal(k * 4, noM.StateBytes);
    }

    [Fact]
    public void Random_shapes_ratios_and_settings_match_reference()
    {
        var rng = new Random(2024);
        for (int trial = 0; trial < 150; trial++)
        {
            int d = rng.Next(3) == 0 ? rng.Next(1, 40) : rng.Next(1, 20000);
            int ratio = rng.Next(1, 60);
            var settings = new OptimizerSettings
            {
                Ratio = ratio,
                Layout = rng.Next(2) == 0 ? SketchLayout.Rotation : SketchLayout.Universal,
                SecondMoment = rng.Next(2) == 0 ? SecondMomentEstimate.Sum : SecondMomentEstimate.Mean,
                Beta1 = rng.Next(3) == 0 ? 0 : 0.9,
                // β2 in [0.5, 0.9999) and ε log-uniform in [1e-10, 1e-3): a kernel that ignored either fails
                // (ε through the trials whose gradients are tiny, below).
                Beta2 = rng.Next(4) == 0 ? 0.999 : 0.5 + 0.4999 * rng.NextDouble(),
                Epsilon = Math.Pow(10, -10 + 7 * rng.NextDouble()),
                WeightDecay = rng.Next(2) * 0.01,
                Seed = rng.Next(),
                DenseThreshold = rng.Next(0, 100),
            };
            var specs = new[] { new TensorSpec("t" + trial, new[] { d }) };
            string what = $"trial {trial}: d {d}, {settings}";
            using var opt = new CountSketchAdam(settings, specs) { MaxThreads = rng.Next(1, 4) };
            var reference = new ReferenceOptimizer(settings, specs);
            var p = new[] { Uniform(rng, d) };
            var q = Clone(p);
            double gradientScale = rng.Next(3) == 0 ? 1e-6 : 1.0;   // tiny: √v̂ near ε, so ε shapes the update
            for (int step = 0; step < 2; step++)
            {
                var g = new[] { Normal(rng, d, gradientScale) };
                opt.Step(1e-2f, p, g);
                reference.Step(1e-2f, q, g);
            }
            AssertClose(q[0], p[0], 1e-5, 0.1, what + $" gradient scale {gradientScale}: p");
            AssertClose(reference.SecondMoment(0), opt.CopySecondMoment(0), reference.Tensors[0].IsDense ? 3e-5 : 1e-5, 1e-30, what + " v");
        }
    }
}

[Collection("TileRunner allocation")]
public class CountSketchAdamAllocationTests
{
    [Theory]
    [InlineData(SketchLayout.Rotation, 1)]
    [InlineData(SketchLayout.Rotation, 2)]
    [InlineData(SketchLayout.Universal, 2)]
    public void Cpu_step_allocates_nothing_on_the_calling_thread(SketchLayout layout, int threads)
    {
        var specs = CountSketchAdamTests.MixedSpecs();
        using var opt = new CountSketchAdam(new OptimizerSettings { Layout = layout }, specs) { MaxThreads = threads };
        var p = specs.Select(s => Enumerable.Range(0, s.Shape.Aggregate(1, (x, y) => x * y)).Select(i => 0.01f * (i % 7)).ToArray()).ToArray();
        var g = specs.Select(s => Enumerable.Range(0, s.Shape.Aggregate(1, (x, y) => x * y)).Select(i => 1e-3f * ((i % 5) - 2)).ToArray()).ToArray();
        var mp = p.Select(a => (Memory<float>)a).ToArray();
        var mg = g.Select(a => (ReadOnlyMemory<float>)a).ToArray();
        for (int i = 0; i < 100; i++) { opt.Step(1e-6f, p, g); opt.Step(1e-6f, mp, mg); }   // past tiered-JIT warm-up
        long before = GC.GetAllocatedBytesForCurrentThread();
        opt.Step(1e-6f, p, g);
        long afterArrays = GC.GetAllocatedBytesForCurrentThread();
        opt.Step(1e-6f, mp, mg);
        long afterMemory = GC.GetAllocatedBytesForCurrentThread();
        Assert.Equal(0, afterArrays - before);
        Assert.Equal(0, afterMemory - afterArrays);
        Assert.Equal(202, opt.StepCount);
    }
}
