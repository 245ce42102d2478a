using Collins.Reference;
using Collins.Tests.Generated;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests.Generated
{
    /// <summary>
    /// Global gradient-norm clipping (MaxGradientNorm = 5) for every kind of tensor: Rotation and Universal with β1 both ways
    /// (and both estimates), factored (with update clipping), factored with a 4-bit first moment (stochastic rounding), and all-dense
    /// AdamW (Ratio 1). W and V are sketched matrices, B a dense vector (below the threshold), so every optimizer mixes kinds and
    /// the norm is global across them.
    /// </summary>
    [SketchedOptimizer(Name = "RotM", Ratio = 8, Beta1 = 0.9, WeightDecay = 0.01, DenseThreshold = 64, MaxGradientNorm = 5)]
    [SketchedOptimizer(Name = "RotNoM", Ratio = 8, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 64, MaxGradientNorm = 5)]
    [SketchedOptimizer(Name = "UniM", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0.9, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 64, MaxGradientNorm = 5)]
    [SketchedOptimizer(Name = "UniNoM", Layout = SketchLayout.Universal, Ratio = 8, Beta1 = 0, WeightDecay = 0.01, DenseThreshold = 64, MaxGradientNorm = 5)]
    [SketchedOptimizer(Name = "Factored", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, WeightDecay = 0.01, DenseThreshold = 64, MaxGradientNorm = 5)]
    [SketchedOptimizer(Name = "Dense", Ratio = 1, WeightDecay = 0.01, MaxGradientNorm = 5)]
    [SketchedOptimizer(Name = "FactoredQ4", Beta1 = 0.9, SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4,
                       StochasticRounding = true, WeightDecay = 0.01, DenseThreshold = 64, MaxGradientNorm = 5)]
    public partial class ClippedModel
    {
        [Tensor(61, 49)] public float[] W = new float[61 * 49];
        [Tensor(40, 13)] public float[] V = new float[40 * 13];
        [Tensor(50)] public float[] B = new float[50];
    }
}

namespace Collins.Tests
{
    /// <summary>
    /// MaxGradientNorm: clip_grad_norm_ inside the step. The reference against clipping done by hand (the formula, then the unclipped
    /// reference); the engine (run-time and generated) against the reference for every kind, with the clip active on some steps
    /// and not on others; bit-identity (generated vs run-time, thread counts, a bound never reached vs off); the dense path
    /// against clip-then-AdamW; refusals (settings, a non-finite step); the device: GradientClippingDeviceTests.
    /// </summary>
    [Trait("Category", "Kernels")]
    public class GradientClippingTests
    {
        private const double Bound = 5;
        private const float Lr = 1e-2f;

        public static TheoryData<string> Kinds() => new() { "RotM", "RotNoM", "UniM", "UniNoM", "Factored", "Dense", "FactoredQ4" };

        private static (OptimizerSettings Settings, IReadOnlyList<TensorSpec> Specs) Of(string kind) => kind switch
        {
            "RotM" => (ClippedModel.RotM.DefaultSettings, ClippedModel.RotM.TensorSpecs),
            "RotNoM" => (ClippedModel.RotNoM.DefaultSettings, ClippedModel.RotNoM.TensorSpecs),
            "UniM" => (ClippedModel.UniM.DefaultSettings, ClippedModel.UniM.TensorSpecs),
            "UniNoM" => (ClippedModel.UniNoM.DefaultSettings, ClippedModel.UniNoM.TensorSpecs),
            "Factored" => (ClippedModel.Factored.DefaultSettings, ClippedModel.Factored.TensorSpecs),
            "Dense" => (ClippedModel.Dense.DefaultSettings, ClippedModel.Dense.TensorSpecs),
            "FactoredQ4" => (ClippedModel.FactoredQ4.DefaultSettings, ClippedModel.FactoredQ4.TensorSpecs),
            _ => throw new ArgumentException(kind),
        };

        private static SketchedOptimizerBase CreateGenerated(string kind) => kind switch
        {
            "RotM" => new ClippedModel.RotM(),
            "RotNoM" => new ClippedModel.RotNoM(),
            "UniM" => new ClippedModel.UniM(),
            "UniNoM" => new ClippedModel.UniNoM(),
            "Factored" => new ClippedModel.Factored(),
            "Dense" => new ClippedModel.Dense(),
            "FactoredQ4" => new ClippedModel.FactoredQ4(),
            _ => throw new ArgumentException(kind),
        };

        private static StepOutcome StepGenerated(SketchedOptimizerBase o, float lr, float[][] p, float[][] g) => o switch
        {
            ClippedModel.RotM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            ClippedModel.RotNoM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            ClippedModel.UniM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            ClippedModel.UniNoM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            ClippedModel.Factored x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            ClippedModel.Dense x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            ClippedModel.FactoredQ4 x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            _ => throw new ArgumentException(o.GetType().Name),
        };

        /// <summary>
        /// Gradients of step <paramref name="step"/>: uniform in [−f, f) with f = 0.1 on every third step (‖g‖ ≈ 3.4, below the
        /// bound 5: not clipped) and 1 or 3 otherwise (‖g‖ ≈ 34 or 103: clipped), so both regimes alternate and s changes between steps.
        /// </summary>
        internal static float[][] StepGradients(IReadOnlyList<TensorSpec> specs, int seed, int step)
        {
            float f = step % 3 == 0 ? 0.1f : step % 3 == 1 ? 1f : 3f;
            return specs.Select((s, i) => RandomArray(s.Shape.Aggregate(1, (a, b) => a * b), seed * 7919 + step * 104729 + i, f)).ToArray();
        }

        /// <summary>‖g‖ over every tensor, in double, straight from the definition.</summary>
        internal static double Norm(float[][] g) => Math.Sqrt(g.Sum(t => t.Sum(x => (double)x * x)));

        /// <summary>clip_grad_norm_(g, bound) by hand: c = bound / (‖g‖ + 1e-6); when c &lt; 1 every entry becomes (float)(c·g), in double.</summary>
        private static float[][] ClippedByHand(float[][] g, double bound)
        {
            double c = bound / (Norm(g) + 1e-6);
            return c < 1 ? g.Select(t => t.Select(x => (float)(c * x)).ToArray()).ToArray() : Clone(g);
        }

        /// <summary>|a − e| ≤ relative·|e| + floor·max|e| (signed sketch sums cancel, so a purely relative bound means nothing near 0).</summary>
        private static void AssertMomentsClose(string what, float[] expected, float[] actual, double relative, double floor = 1e-6)
        {
            Assert.Equal(expected.Length, actual.Length);
            double scale = expected.Length == 0 ? 0 : expected.Max(x => Math.Abs((double)x));
            for (int i = 0; i < expected.Length; i++)
            {
                double e = expected[i], a = actual[i];
                if (!(Math.Abs(a - e) <= relative * Math.Abs(e) + floor * scale))
                    Assert.Fail($"{what}[{i}]: expected {e:R}, got {a:R}");
            }
        }

        [Theory]
        [MemberData(nameof(Kinds))]
        public void The_reference_clips_as_clip_grad_norm_then_steps(string kind)
        {
            // The reference with MaxGradientNorm against the unclipped reference stepped on gradients clipped by hand: the two differ
            // only in where s meets g (s·Σg in double there, Σ(float)(s·g) here), far below the tolerance.
            var (settings, specs) = Of(kind);
            var clipped = new ReferenceOptimizer(settings, specs);
            var byHand = new ReferenceOptimizer(settings with { MaxGradientNorm = 0 }, specs);
            var unclipped = new ReferenceOptimizer(settings with { MaxGradientNorm = 0 }, specs);
            var pc = Parameters(specs, 3);
            var ph = Clone(pc);
            var pu = Clone(pc);
            int active = 0;
            for (int step = 1; step <= 9; step++)
            {
                var g = StepGradients(specs, 3, step);
                if (Norm(g) > Bound) active++;
                clipped.Step(Lr, pc, g);
                byHand.Step(Lr, ph, ClippedByHand(g, Bound));
                unclipped.Step(Lr, pu, g);
            }
            Assert.Equal(6, active);   // six steps clipped, three not
            AssertClose(specs, ph, pc, 1e-6, kind);
            for (int t = 0; t < specs.Count; t++)
            {
                AssertMomentsClose($"{kind} {specs[t].Name} m", byHand.FirstMoment(t), clipped.FirstMoment(t), 1e-6);
                AssertMomentsClose($"{kind} {specs[t].Name} v", byHand.SecondMoment(t), clipped.SecondMoment(t), 1e-6);
            }
            // Not vacuous: clipping changed every tensor's trajectory.
            for (int t = 0; t < specs.Count; t++) Assert.NotEqual(pu[t], pc[t]);
        }

        [Theory]
        [MemberData(nameof(Kinds))]
        public void Run_time_and_generated_optimizers_follow_the_reference_and_are_bit_identical(string kind)
        {
            var (settings, specs) = Of(kind);
            var reference = new ReferenceOptimizer(settings, specs);
            using var runtime = new CountSketchAdam(settings, specs);
            using var generated = CreateGenerated(kind);
            Assert.Equal(Bound, generated.Settings.MaxGradientNorm);
            var pr = Parameters(specs, 4);
            var pe = Clone(pr);
            var pg = Clone(pr);
            for (int step = 1; step <= 9; step++)
            {
                var g = StepGradients(specs, 4, step);
                var before = Clone(g);
                reference.Step(Lr, pr, g);
                Assert.Equal(StepOutcome.Applied, runtime.Step(Lr, pe, g));
                generated.MaxThreads = 1 + step % 2;
                Assert.Equal(StepOutcome.Applied, StepGenerated(generated, Lr, pg, g));
                AssertBitIdentical(before, g);   // the caller's gradients are not written
                double norm = Norm(g);
                Assert.InRange(runtime.LastGradientNorm, norm * (1 - 1e-6), norm * (1 + 1e-6));
                Assert.Equal(BitConverter.DoubleToInt64Bits(runtime.LastGradientNorm), BitConverter.DoubleToInt64Bits(generated.LastGradientNorm));
                AssertBitIdentical(pe, pg);
            }
            AssertClose(specs, pr, pe, 1e-5, kind);
            for (int t = 0; t < specs.Count; t++)
            {
                // Dense tensors: v of (s·g)² in float vs double, a few ulps relative; sketches: float bucket sums.
                AssertMomentsClose($"{kind} {specs[t].Name} m", reference.FirstMoment(t), runtime.CopyFirstMoment(t), 1e-5);
                AssertMomentsClose($"{kind} {specs[t].Name} v", reference.SecondMoment(t), runtime.CopySecondMoment(t), 3e-5);
                AssertBitIdentical([runtime.CopyFirstMoment(t), runtime.CopySecondMoment(t)], [generated.CopyFirstMoment(t), generated.CopySecondMoment(t)]);
            }
        }

        [Fact]
        public void Without_clipping_the_norm_is_not_formed()
        {
            using var opt = new CountSketchAdam(ClippedModel.RotM.DefaultSettings with { MaxGradientNorm = 0 }, ClippedModel.RotM.TensorSpecs);
            var p = Parameters(ClippedModel.RotM.TensorSpecs, 1);
            Assert.Equal(StepOutcome.Applied, opt.Step(Lr, p, StepGradients(ClippedModel.RotM.TensorSpecs, 1, 1)));
            Assert.True(double.IsNaN(opt.LastGradientNorm));
        }

        [Theory]
        [MemberData(nameof(Kinds))]
        public void A_bound_never_reached_is_bit_identical_to_no_clipping(string kind)
        {
            // s = 1 runs the clipping path (norm formed, coefficients multiplied by 1f): it must not change a bit.
            var (settings, specs) = Of(kind);
            using var off = new CountSketchAdam(settings with { MaxGradientNorm = 0 }, specs);
            using var far = new CountSketchAdam(settings with { MaxGradientNorm = 1e30 }, specs);
            var p = Parameters(specs, 6);
            var q = Clone(p);
            for (int step = 1; step <= 4; step++)
            {
                var g = StepGradients(specs, 6, step);
                off.Step(Lr, p, g);
                far.Step(Lr, q, g);
            }
            Assert.False(double.IsNaN(far.LastGradientNorm));
            AssertBitIdentical(p, q);
            for (int t = 0; t < specs.Count; t++)
                AssertBitIdentical([off.CopyFirstMoment(t), off.CopySecondMoment(t)], [far.CopyFirstMoment(t), far.CopySecondMoment(t)]);
        }

        /// <summary>Tensors of many tiles in every phase and kind: a Universal and a Rotation matrix past 2^20 entries, a factored matrix, a dense tensor of several tiles.</summary>
        public static TheoryData<SketchLayout, double, SecondMomentEstimate> ThreadCases() => new()
        {
            { SketchLayout.Universal, 0.9, SecondMomentEstimate.Sum },
            { SketchLayout.Rotation, 0.0, SecondMomentEstimate.Mean },
            { SketchLayout.Rotation, 0.0, SecondMomentEstimate.Factored },
        };

        [Theory]
        [MemberData(nameof(ThreadCases))]
        public void Clipped_steps_are_bit_identical_for_any_MaxThreads(SketchLayout layout, double beta1, SecondMomentEstimate estimate)
        {
            var settings = new OptimizerSettings { Layout = layout, Beta1 = beta1, SecondMoment = estimate, Ratio = 16, WeightDecay = 0.01, MaxGradientNorm = 10 };
            TensorSpec[] specs =
            [
                new("W", new[] { 1025, 1024 }),
                new("D", new[] { 3 * 65536 + 11 }, Sketching: TensorSketching.Dense),
            ];
            ThreadCountDeterminism.AssertBitIdentical(threads =>
            {
                using var opt = new CountSketchAdam(settings, specs) { MaxThreads = threads };
                var p = Parameters(specs, 9);
                for (int step = 1; step <= 3; step++)
                {
                    var g = Gradients(specs, 9, step);
                    Assert.Equal(StepOutcome.Applied, opt.Step(Lr, p, g));
                    Assert.True(opt.LastGradientNorm > 10, "the clip must be active");
                }
                return ThreadCountDeterminism.Capture(opt, p);
            });
        }

        [Fact]
        public void All_dense_optimizer_is_clip_grad_norm_then_AdamW()
        {
            // Ratio 1 makes every tensor dense: exact AdamW. With MaxGradientNorm it must be clip_grad_norm_ (by hand, in double)
            // followed by the independent dense AdamW reference (no plans, no hashes).
            var settings = new OptimizerSettings { Ratio = 1, Beta1 = 0.9, Beta2 = 0.99, WeightDecay = 0.01, MaxGradientNorm = Bound };
            var specs = ClippedModel.Dense.TensorSpecs;
            using var opt = new CountSketchAdam(settings, specs);
            Assert.All(opt.Tensors, t => Assert.True(t.IsDense));
            var adamW = new DenseAdamWReference(settings, specs.Select(s => s.Shape.Aggregate(1, (a, b) => a * b)).ToArray());
            var p = Parameters(specs, 8);
            var q = Clone(p);
            for (int step = 1; step <= 9; step++)
            {
                var g = StepGradients(specs, 8, step);
                Assert.Equal(StepOutcome.Applied, opt.Step(Lr, p, g));
                adamW.Step(Lr, q, ClippedByHand(g, Bound));
            }
            AssertClose(specs, q, p, 1e-5, "dense");
            for (int t = 0; t < specs.Count; t++)
            {
                ReferenceTestHelpers.AssertClose(adamW.FirstMoment(t), opt.CopyFirstMoment(t), 1e-5, 1e-3, "m");
                ReferenceTestHelpers.AssertClose(adamW.SecondMoment(t), opt.CopySecondMoment(t), 3e-5, 1e-30, "v");
            }
        }

        [Fact]
        public void A_non_finite_step_stays_skipped_and_changes_nothing()
        {
            var (settings, specs) = Of("RotM");
            using var opt = new CountSketchAdam(settings, specs);
            using var twin = new CountSketchAdam(settings, specs);
            var p = Parameters(specs, 2);
            var q = Clone(p);
            var g1 = StepGradients(specs, 2, 1);
            opt.Step(Lr, p, g1);
            twin.Step(Lr, q, g1);
            double norm = opt.LastGradientNorm;
            var bad = StepGradients(specs, 2, 2);
            bad[2][7] = float.NaN;   // the dense tensor
            var before = Clone(p);
            Assert.Equal(StepOutcome.SkippedNonFinite, opt.Step(Lr, p, bad));
            AssertBitIdentical(before, p);
            Assert.Equal(norm, opt.LastGradientNorm);
            Assert.Equal((1, 1L), (opt.StepCount, opt.SkippedSteps));
            var g2 = StepGradients(specs, 2, 3);
            opt.Step(Lr, p, g2);
            twin.Step(Lr, q, g2);
            AssertBitIdentical(q, p);
        }

        [Theory]
        [InlineData(-1.0)]
        [InlineData(double.NaN)]
        [InlineData(double.PositiveInfinity)]
        [InlineData(double.NegativeInfinity)]
        public void An_invalid_bound_is_refused_naming_the_setting(double bound)
        {
            var settings = new OptimizerSettings { MaxGradientNorm = bound };
            var e = Assert.Throws<ArgumentException>(settings.Validate);
            Assert.Equal(nameof(OptimizerSettings.MaxGradientNorm), e.ParamName);
            Assert.Contains("MaxGradientNorm must be finite and >= 0", e.Message, StringComparison.Ordinal);
            e = Assert.Throws<ArgumentException>(() => new CountSketchAdam(settings, [new TensorSpec("w", 10)]));
            Assert.Equal(nameof(OptimizerSettings.MaxGradientNorm), e.ParamName);
        }
    }
}
