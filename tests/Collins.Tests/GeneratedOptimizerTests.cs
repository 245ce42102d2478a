using Collins.Kernels;
using Collins.Reference;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests.Generated;

/// <summary>Generated CPU optimizers against the scalar reference, determinism, plans, protocol.</summary>
[Trait("Category", "Kernels")]
[Collection("TileRunner allocation")]
public class GeneratedOptimizerTests
{
    private const float LearningRate = 0.01f;

    /// <summary>Runs <paramref name="steps"/> steps of a generated optimizer and of the reference on the same data; returns both parameter sets.</summary>
    private static (float[][] Generated, float[][] Expected) RunAgainstReference(
        OptimizerSettings settings, IReadOnlyList<TensorSpec> specs, Action<float, float[][], float[][]> step, int steps, int seed,
        SketchedOptimizerBase? optimizer = null)
    {
        var reference = new ReferenceOptimizer(settings, specs);
        var p = Parameters(specs, seed);
        var expected = Clone(p);
        for (int s = 1; s <= steps; s++)
        {
            var g = Gradients(specs, seed, s);
            step(LearningRate, p, g);
            reference.Step(LearningRate, expected, g);
        }
        if (optimizer is not null)
        {
            // The moment sketches themselves agree (not only their effect on the parameters).
            for (int t = 0; t < specs.Count; t++)
            {
                // Dense tensors go through DenseAdamWCpu, which forms 1 − β in float (1f − 0.999f is 1.3e-5 relative
                // off 0.001); the generated sketch kernels form it in double. Hence the looser bound there.
                double relative = reference.Tensors[t].IsDense ? 3e-5 : 1e-5;
                AssertMomentsClose(specs[t].Name + " m", reference.FirstMoment(t), optimizer.CopyFirstMoment(t), relative);
                AssertMomentsClose(specs[t].Name + " v", reference.SecondMoment(t), optimizer.CopySecondMoment(t), relative);
            }
        }
        return (p, expected);
    }

    /// <summary>|a − e| ≤ relative·|e| + 1e-6·max|e| (sums of signed terms cancel, so a purely relative bound would be meaningless near 0).</summary>
    private static void AssertMomentsClose(string what, float[] expected, float[] actual, double relative)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Length == 0 ? 0 : expected.Max(x => Math.Abs((double)x));
        for (int i = 0; i < expected.Length; i++)
        {
            double tol = relative * Math.Abs(expected[i]) + 1e-6 * scale;
            if (!(Math.Abs(actual[i] - (double)expected[i]) <= tol))
                Assert.Fail($"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
        }
    }

    private static void StepRaggedRotation(SketchedOptimizerBase opt, float lr, float[][] p, float[][] g)
    {
        var outcome = opt switch
        {
            RaggedRotation.Optimizer o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4], p[5], g[5]),
            RaggedRotation.MeanNoMomentum o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4], p[5], g[5]),
            _ => throw new ArgumentException(opt.GetType().Name),
        };
        Assert.Equal(StepOutcome.Applied, outcome);
    }

    private static void StepRaggedUniversal(SketchedOptimizerBase opt, float lr, float[][] p, float[][] g)
    {
        var outcome = opt switch
        {
            RaggedUniversal.Optimizer o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3]),
            RaggedUniversal.MeanNoMomentum o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3]),
            _ => throw new ArgumentException(opt.GetType().Name),
        };
        Assert.Equal(StepOutcome.Applied, outcome);
    }

    [Fact]
    public void Rotation_sum_momentum_weight_decay_matches_reference_over_10_steps()
    {
        using var opt = new RaggedRotation.Optimizer();
        var (actual, expected) = RunAgainstReference(RaggedRotation.Optimizer.DefaultSettings, RaggedRotation.Optimizer.TensorSpecs,
            (lr, p, g) => StepRaggedRotation(opt, lr, p, g), 10, 1, opt);
        AssertClose(RaggedRotation.Optimizer.TensorSpecs, expected, actual);
        Assert.Equal(10, opt.StepCount);
    }

    [Fact]
    public void Rotation_mean_beta1_zero_matches_reference_over_10_steps()
    {
        using var opt = new RaggedRotation.MeanNoMomentum();
        var (actual, expected) = RunAgainstReference(RaggedRotation.MeanNoMomentum.DefaultSettings, RaggedRotation.MeanNoMomentum.TensorSpecs,
            (lr, p, g) => StepRaggedRotation(opt, lr, p, g), 10, 2, opt);
        AssertClose(RaggedRotation.MeanNoMomentum.TensorSpecs, expected, actual);
    }

    [Fact]
    public void Universal_sum_momentum_weight_decay_matches_reference_over_10_steps()
    {
        using var opt = new RaggedUniversal.Optimizer();
        var (actual, expected) = RunAgainstReference(RaggedUniversal.Optimizer.DefaultSettings, RaggedUniversal.Optimizer.TensorSpecs,
            (lr, p, g) => StepRaggedUniversal(opt, lr, p, g), 10, 3, opt);
        AssertClose(RaggedUniversal.Optimizer.TensorSpecs, expected, actual);
    }

    [Fact]
    public void Universal_mean_beta1_zero_matches_reference_over_10_steps()
    {
        using var opt = new RaggedUniversal.MeanNoMomentum();
        var (actual, expected) = RunAgainstReference(RaggedUniversal.MeanNoMomentum.DefaultSettings, RaggedUniversal.MeanNoMomentum.TensorSpecs,
            (lr, p, g) => StepRaggedUniversal(opt, lr, p, g), 10, 4, opt);
        AssertClose(RaggedUniversal.MeanNoMomentum.TensorSpecs, expected, actual);
    }

    [Fact]
    public void Large_4M_tensor_rotation_mean_matches_reference_over_10_steps()
    {
        using var opt = new Outer.Large.Optimizer();
        var (actual, expected) = RunAgainstReference(Outer.Large.Optimizer.DefaultSettings, Outer.Large.Optimizer.TensorSpecs,
            (lr, p, g) => Assert.Equal(StepOutcome.Applied, opt.Step(lr, p[0], g[0], p[1], g[1])), 10, 5, opt);
        AssertClose(Outer.Large.Optimizer.TensorSpecs, expected, actual);
    }

    [Fact]
    public void Rotation_is_bit_identical_across_runs_and_thread_counts()
    {
        // Parameters and both moments, MaxThreads 1, 2, 3, 7 (and a worker must have run tiles).
        var specs = Outer.Large.Optimizer.TensorSpecs;
        ThreadCountDeterminism.AssertBitIdentical(threads =>
        {
            using var opt = new Outer.Large.Optimizer { MaxThreads = threads };
            var p = Parameters(specs, 6);
            for (int s = 1; s <= 3; s++)
            {
                var g = Gradients(specs, 6, s);
                Assert.Equal(StepOutcome.Applied, opt.Step(LearningRate, p[0], g[0], p[1], g[1]));
            }
            return ThreadCountDeterminism.Capture(opt, p);
        });
    }

    [Fact]
    public void Rotation_beta1_zero_is_bit_identical_across_thread_counts()
    {
        var specs = Wide.RotationNoMomentum.TensorSpecs;
        ThreadCountDeterminism.AssertBitIdentical(threads =>
        {
            using var opt = new Wide.RotationNoMomentum { MaxThreads = threads };
            var p = Parameters(specs, 12);
            for (int s = 1; s <= 3; s++)
            {
                var g = Gradients(specs, 12, s);
                Assert.Equal(StepOutcome.Applied, opt.Step(LearningRate, p[0], g[0], p[1], g[1]));
            }
            return ThreadCountDeterminism.Capture(opt, p);
        });
    }

    [Fact]
    public void Universal_is_bit_identical_across_runs_and_thread_counts()
    {
        var specs = Wide.Universal.TensorSpecs;
        ThreadCountDeterminism.AssertBitIdentical(threads =>
        {
            using var opt = new Wide.Universal { MaxThreads = threads };
            var p = Parameters(specs, 7);
            for (int s = 1; s <= 3; s++)
            {
                var g = Gradients(specs, 7, s);
                Assert.Equal(StepOutcome.Applied, opt.Step(LearningRate, p[0], g[0], p[1], g[1]));
            }
            return ThreadCountDeterminism.Capture(opt, p);
        });
    }

    [Fact]
    public void Wide_models_match_the_reference()
    {
        // The thread-count tests above compare a model with itself; this ties the same model to the algorithm.
        using var u = new Wide.Universal();
        var (actual, expected) = RunAgainstReference(Wide.Universal.DefaultSettings, Wide.Universal.TensorSpecs,
            (lr, p, g) => Assert.Equal(StepOutcome.Applied, u.Step(lr, p[0], g[0], p[1], g[1])), 3, 13, u);
        AssertClose(Wide.Universal.TensorSpecs, expected, actual);
        using var r = new Wide.RotationNoMomentum();
        (actual, expected) = RunAgainstReference(Wide.RotationNoMomentum.DefaultSettings, Wide.RotationNoMomentum.TensorSpecs,
            (lr, p, g) => Assert.Equal(StepOutcome.Applied, r.Step(lr, p[0], g[0], p[1], g[1])), 3, 14, r);
        AssertClose(Wide.RotationNoMomentum.TensorSpecs, expected, actual);
    }

    [Fact]
    public void Generated_constants_match_runtime_plans()
    {
        void Check(Type optimizer, OptimizerSettings settings, IReadOnlyList<TensorSpec> specs)
        {
            foreach (var spec in specs)
            {
                var plan = new TensorPlan(spec, settings);
                var nested = optimizer.GetNestedType(spec.Name) ?? throw new Xunit.Sdk.XunitException($"{optimizer.Name} lacks nested type {spec.Name}");
                int Const(string name) => (int)nested.GetField(name)!.GetRawConstantValue()!;
                Assert.Equal(plan.Length, Const("Length"));
                Assert.Equal(plan.Buckets, Const("Buckets"));
                Assert.Equal(plan.Rows, Const("Rows"));
                Assert.Equal(plan.Ratio, Const("Ratio"));
                Assert.Equal(plan.IsDense, (bool)nested.GetField("IsDense")!.GetRawConstantValue()!);
                Assert.Equal(plan.StateFloats * 4, (long)nested.GetField("StateBytes")!.GetRawConstantValue()!);
                if (!plan.IsDense && plan.Layout == SketchLayout.Universal)
                {
                    uint U(string name) => (uint)nested.GetField(name)!.GetRawConstantValue()!;
                    Assert.Equal(plan.UniversalA, U("A"));
                    Assert.Equal(plan.UniversalB, U("B"));
                    Assert.Equal(plan.UniversalSignA, U("SignA"));
                    Assert.Equal(plan.UniversalSignB, U("SignB"));
                }
            }
        }
        Check(typeof(RaggedRotation.Optimizer), RaggedRotation.Optimizer.DefaultSettings, RaggedRotation.Optimizer.TensorSpecs);
        Check(typeof(RaggedRotation.MeanNoMomentum), RaggedRotation.MeanNoMomentum.DefaultSettings, RaggedRotation.MeanNoMomentum.TensorSpecs);
        Check(typeof(RaggedUniversal.Optimizer), RaggedUniversal.Optimizer.DefaultSettings, RaggedUniversal.Optimizer.TensorSpecs);
        Check(typeof(RaggedUniversal.MeanNoMomentum), RaggedUniversal.MeanNoMomentum.DefaultSettings, RaggedUniversal.MeanNoMomentum.TensorSpecs);
        Check(typeof(Outer.Large.Optimizer), Outer.Large.Optimizer.DefaultSettings, Outer.Large.Optimizer.TensorSpecs);

        // Rotation tables (ReadOnlySpan properties, so not through reflection).
        var s = RaggedRotation.Optimizer.DefaultSettings;
        var specs = RaggedRotation.Optimizer.TensorSpecs;
        Assert.Equal(new TensorPlan(specs[0], s).Rotations.ToArray(), RaggedRotation.Optimizer.Prime.Rotations.ToArray());
        Assert.Equal(new TensorPlan(specs[0], s).Signs.ToArray(), RaggedRotation.Optimizer.Prime.Signs.ToArray());
        Assert.Equal(new TensorPlan(specs[1], s).Rotations.ToArray(), RaggedRotation.Optimizer.Tiny.Rotations.ToArray());
        Assert.Equal(new TensorPlan(specs[2], s).Signs.ToArray(), RaggedRotation.Optimizer.Odd.Signs.ToArray());
        var ls = Outer.Large.Optimizer.DefaultSettings;
        Assert.Equal(new TensorPlan(Outer.Large.Optimizer.TensorSpecs[0], ls).Rotations.ToArray(), Outer.Large.Optimizer.Big.Rotations.ToArray());

        // Settings are the attribute's.
        Assert.Equal(16, s.Ratio);
        Assert.Equal(0.01, s.WeightDecay);
        Assert.Equal(0.0, RaggedRotation.MeanNoMomentum.DefaultSettings.Beta1);
        Assert.Equal(SecondMomentEstimate.Mean, RaggedRotation.MeanNoMomentum.DefaultSettings.SecondMoment);
        Assert.Equal(SketchLayout.Universal, RaggedUniversal.Optimizer.DefaultSettings.Layout);
    }

    [Fact]
    public void Dense_and_sketched_tensors_follow_the_plan_rules()
    {
        Assert.False(RaggedRotation.Optimizer.Tiny.IsDense);      // 7 < threshold but Sketching = Sketched
        Assert.Equal(1, RaggedRotation.Optimizer.Tiny.Buckets);    // ceil(7 / 16)
        Assert.True(RaggedRotation.Optimizer.One.IsDense);         // 1 < threshold
        Assert.True(RaggedRotation.Optimizer.Small.IsDense);       // 33 < 64
        Assert.Equal(4, RaggedRotation.Optimizer.Override.Ratio);  // per-tensor override
        Assert.Equal(131073, Outer.Large.Optimizer.Big.Buckets);   // ceil(4194319 / 32)
        Assert.Equal(32, Outer.Large.Optimizer.Big.Rows);
        using var opt = new RaggedRotation.MeanNoMomentum();
        long expected = RaggedRotation.MeanNoMomentum.TensorSpecs.Select(t => new TensorPlan(t, RaggedRotation.MeanNoMomentum.DefaultSettings).StateFloats * 4).Sum();
        Assert.Equal(expected, opt.StateBytes);
    }

    [Fact]
    public void Non_finite_gradient_skips_the_step_and_changes_nothing()
    {
        var specs = RaggedRotation.Optimizer.TensorSpecs;
        using var opt = new RaggedRotation.Optimizer();
        var reference = new ReferenceOptimizer(RaggedRotation.Optimizer.DefaultSettings, specs);
        var p = Parameters(specs, 8);
        var expected = Clone(p);
        for (int s = 1; s <= 4; s++)
        {
            var g = Gradients(specs, 8, s);
            if (s == 2 || s == 3)   // after an odd and an even number of applied steps
            {
                var bad = Clone(g);
                bad[2][4321] = float.NaN;
                var before = Clone(p);
                var mBefore = Enumerable.Range(0, specs.Count).Select(opt.CopyFirstMoment).ToArray();
                var vBefore = Enumerable.Range(0, specs.Count).Select(opt.CopySecondMoment).ToArray();
                var outcome = opt.Step(LearningRate, p[0], bad[0], p[1], bad[1], p[2], bad[2], p[3], bad[3], p[4], bad[4], p[5], bad[5]);
                Assert.Equal(StepOutcome.SkippedNonFinite, outcome);
                AssertBitIdentical(before, p);
                AssertBitIdentical(mBefore, Enumerable.Range(0, specs.Count).Select(opt.CopyFirstMoment).ToArray());
                AssertBitIdentical(vBefore, Enumerable.Range(0, specs.Count).Select(opt.CopySecondMoment).ToArray());
                Assert.Equal(s == 2 ? 1 : 3, opt.SkippedSteps);
                Assert.Equal(s - 1, opt.StepCount);
                bad[2][4321] = 0; bad[3][0] = float.PositiveInfinity; // a dense tensor
                Assert.Equal(StepOutcome.SkippedNonFinite, opt.Step(LearningRate, p[0], bad[0], p[1], bad[1], p[2], bad[2], p[3], bad[3], p[4], bad[4], p[5], bad[5]));
                AssertBitIdentical(before, p);
            }
            StepRaggedRotation(opt, LearningRate, p, g);
            reference.Step(LearningRate, expected, g);
        }
        AssertClose(specs, expected, p);
        Assert.Equal(4, opt.StepCount);
        Assert.Equal(4, opt.SkippedSteps);
    }

    [Fact]
    public void Wrong_lengths_throw_before_anything_is_written()
    {
        var specs = RaggedUniversal.Optimizer.TensorSpecs;
        using var opt = new RaggedUniversal.Optimizer();
        var p = Parameters(specs, 9);
        var g = Gradients(specs, 9, 1);
        var before = Clone(p);
        var ex = Assert.Throws<ArgumentException>(() => opt.Step(LearningRate, p[0], g[0], p[1], g[1], p[2], g[2].AsSpan(1), p[3], g[3]));
        Assert.Contains("Odd", ex.Message);
        AssertBitIdentical(before, p);
        Assert.Equal(0, opt.StepCount);
        Assert.Throws<ArgumentException>(() => opt.Step(LearningRate, p[0], p[0], p[1], g[1], p[2], g[2], p[3], g[3]));
        // The guard was released: a valid step works.
        StepRaggedUniversal(opt, LearningRate, p, g);
        Assert.Equal(1, opt.StepCount);
    }

    [Fact]
    public void Cpu_step_allocates_nothing()
    {
        var specs = RaggedRotation.Optimizer.TensorSpecs;
        foreach (int threads in new[] { 1, 2 })
        {
            using var opt = new RaggedRotation.Optimizer { MaxThreads = threads };
            var p = Parameters(specs, 10);
            var g = Gradients(specs, 10, 1);
            for (int i = 0; i < 200; i++) StepRaggedRotation(opt, 1e-6f, p, g); // past tiered-JIT warm-up
            long before = GC.GetAllocatedBytesForCurrentThread();
            opt.Step(1e-6f, p[0], g[0], p[1], g[1], p[2], g[2], p[3], g[3], p[4], g[4], p[5], g[5]);
            long after = GC.GetAllocatedBytesForCurrentThread();
            Assert.Equal(0, after - before);
        }
    }
}
