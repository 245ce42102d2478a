using Collins.Reference;
using ILGPU;
using ILGPU.Runtime.CPU;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests;

/// <summary>
/// The factored second moment (<see cref="SecondMomentEstimate.Factored"/>): the reference against the formulas, the engine
/// against the reference, determinism, state, the guard, checkpoints, refusals, and the generated optimizer against the run-time one.
/// </summary>
[Trait("Category", "Kernels")]
public class FactoredEstimateTests
{
    private static readonly OptimizerSettings Settings = new() { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, WeightDecay = 0.01, DenseThreshold = 100 };
    /// <summary>The generated model's tensors (a matrix, a 3-D tensor, a dense vector) and a sketched vector, factored as 1000 × 1.</summary>
    private static IReadOnlyList<TensorSpec> Specs => [.. Generated.FactoredModel.Optimizer.TensorSpecs, new TensorSpec("V", 1000)];

    [Fact]
    public void Plans_factor_matrices_fold_leading_dimensions_and_view_vectors_as_one_column()
    {
        var plans = Specs.Select(s => new TensorPlan(s, Settings)).ToArray();
        Assert.Equal((true, 37, 129, 37 + 129), (plans[0].IsFactored, plans[0].FactorRows, plans[0].FactorColumns, plans[0].SecondMomentFloats));
        Assert.Equal((true, 6, 700), (plans[1].IsFactored, plans[1].FactorRows, plans[1].FactorColumns));
        Assert.True(plans[2].IsDense);
        Assert.Equal((true, 1000, 1, 1001), (plans[3].IsFactored, plans[3].FactorRows, plans[3].FactorColumns, plans[3].SecondMomentFloats));
        Assert.Empty(plans[0].Rotations.ToArray());   // no sketch, no hash
        Assert.Empty(plans[3].Rotations.ToArray());
        using var optimizer = new CountSketchAdam(Settings, Specs);
        long expected = 4L * ((37 + 129) + (6 + 700) + 20 + (1000 + 1));   // β1 = 0: v only
        Assert.Equal(expected, optimizer.StateBytes);
        long generated = Generated.FactoredModel.Optimizer.W.StateBytes + Generated.FactoredModel.Optimizer.T.StateBytes
                         + Generated.FactoredModel.Optimizer.B.StateBytes;
        Assert.Equal(expected - 4L * 1001, generated);
    }

    /// <summary>
    /// A vector viewed as n × 1: its row means are its own g², so v̂ = R[r]·C[0]/mean(R) is Adam's exact v, and with β1 = 0 the
    /// step is p·(1 − lr·λ) − lr·g/(√(v/bc2) + ε), v ← β2·v + (1 − β2)·g² (computed here from that formula in double), step after
    /// step; and with Adafactor's schedule and clipping, v ← β̂2·v + (1 − β̂2)·g², u = g/(√v + ε), p·(1 − lr·λ) − lr·u/max(1, RMS(u)).
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_vector_steps_with_its_exact_second_moment(bool adafactor)
    {
        var specs = new[] { new TensorSpec("V", [300], Sketching: TensorSketching.Sketched) };
        var settings = adafactor ? Settings with { UpdateClipping = 1, Beta2Schedule = 0.8 } : Settings;
        using var engine = new CountSketchAdam(settings, specs);
        var p = Parameters(specs, 4);
        var expected = p[0].Select(x => (double)x).ToArray();
        var v = new double[300];
        double beta2 = settings.Beta2, eps = settings.Epsilon;
        for (int step = 1; step <= 15; step++)
        {
            var g = Gradients(specs, 4, step);
            Assert.Equal(StepOutcome.Applied, engine.Step(1e-2f, p, g));
            double b2 = adafactor ? 1 - Math.Pow(step, -0.8) : beta2, bc2 = adafactor ? 1 : 1 - Math.Pow(beta2, step);
            var u = new double[300];
            for (int i = 0; i < 300; i++)
            {
                v[i] = b2 * v[i] + (1 - b2) * g[0][i] * (double)g[0][i];
                u[i] = g[0][i] / (Math.Sqrt(v[i] / bc2) + eps);
            }
            double scale = adafactor ? 1 / Math.Max(1, Math.Sqrt(u.Sum(x => x * x) / 300)) : 1;
            for (int i = 0; i < 300; i++) expected[i] = expected[i] * (1 - 1e-2 * settings.WeightDecay) - 1e-2 * scale * u[i];   // decoupled decay, as AdamW
            for (int i = 0; i < 300; i++)
                Assert.True(Math.Abs(expected[i] - p[0][i]) <= 2e-5 * Math.Max(1, Math.Abs(expected[i])), $"step {step}, V[{i}]: {p[0][i]} vs {expected[i]}");
        }
    }

    /// <summary>
    /// With g² of rank one (g[r, c]² = a_r·b_c), the first step's R·C/mean(R) recovers g² exactly, so the step is Adam's first
    /// step, p − lr·g/(|g| + ε) (the bias correction cancels 1 − β2): computed here from that formula, not from the code.
    /// </summary>
    [Fact]
    public void First_step_on_a_rank_one_square_is_Adams_first_step()
    {
        var specs = new[] { new TensorSpec("M", new[] { 4, 6 }, Sketching: TensorSketching.Sketched) };
        var settings = new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored };
        double[] a = [1, 4, 0.25, 9], b = [1, 2, 3, 0.5, 0.1, 7];
        var g = new float[24];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 6; c++) g[r * 6 + c] = (float)(((r + c) % 2 == 0 ? 1 : -1) * Math.Sqrt(a[r] * b[c]));
        var p0 = Enumerable.Range(0, 24).Select(i => 0.01f * i).ToArray();
        var reference = new ReferenceOptimizer(settings, specs);
        var p = (float[])p0.Clone();
        reference.Step(0.1f, [p], [g]);
        using var engine = new CountSketchAdam(settings, specs);
        var q = (float[])p0.Clone();
        Assert.Equal(StepOutcome.Applied, engine.Step(0.1f, [q], [g]));
        for (int i = 0; i < 24; i++)
        {
            double adam = p0[i] - 0.1 * g[i] / (Math.Abs((double)g[i]) + 1e-8);
            Assert.Equal(adam, p[i], 5);
            Assert.Equal(adam, q[i], 5);
        }
    }

    [Fact]
    public void The_engine_follows_the_reference_for_twenty_steps_and_its_moments_too()
    {
        var reference = new ReferenceOptimizer(Settings, Specs);
        using var engine = new CountSketchAdam(Settings, Specs);
        var pr = Parameters(Specs, 5);
        var pe = Clone(pr);
        for (int step = 1; step <= 20; step++)
        {
            var g = Gradients(Specs, 5, step);
            float lr = 1e-2f / step;
            reference.Step(lr, pr, g);
            Assert.Equal(StepOutcome.Applied, engine.Step(lr, pe, g));
        }
        AssertClose(Specs, pr, pe, 1e-5, "factored");
        for (int t = 0; t < Specs.Count; t++)
            AssertClose([Specs[t]], [reference.SecondMoment(t)], [engine.CopySecondMoment(t)], 1e-5, "v");
    }

    /// <summary>With update clipping at d = 0.5 and gradients of growing size, the clip is active; the engine still follows the reference.</summary>
    [Fact]
    public void Update_clipping_follows_the_reference_and_changes_the_step()
    {
        var clipped = Settings with { UpdateClipping = 0.5 };
        var reference = new ReferenceOptimizer(clipped, Specs);
        using var engine = new CountSketchAdam(clipped, Specs);
        using var unclipped = new CountSketchAdam(Settings, Specs);
        var pr = Parameters(Specs, 8);
        var pe = Clone(pr);
        var pu = Clone(pr);
        for (int step = 1; step <= 8; step++)
        {
            var g = Gradients(Specs, 8, step);
            foreach (var t in g) for (int i = 0; i < t.Length; i++) t[i] *= step * step;   // growing gradients: RMS(u) > 0.5
            reference.Step(1e-2f, pr, g);
            engine.Step(1e-2f, pe, g);
            unclipped.Step(1e-2f, pu, g);
        }
        AssertClose(Specs, pr, pe, 1e-5, "clipped");
        Assert.NotEqual(pu[0], pe[0]);   // the clip acted on the factored matrix
        AssertBitIdentical([pu[2]], [pe[2]]);   // and not on the dense tensor
    }

    /// <summary>Adafactor's form: the β2 schedule (c = 0.8) with update clipping (d = 1); at step 1 β̂2 = 0, so v̂ = g² exactly.</summary>
    [Fact]
    public void The_beta2_schedule_follows_the_reference()
    {
        var adafactor = Settings with { UpdateClipping = 1, Beta2Schedule = 0.8 };
        var reference = new ReferenceOptimizer(adafactor, Specs);
        using var engine = new CountSketchAdam(adafactor, Specs);
        using var constant = new CountSketchAdam(Settings with { UpdateClipping = 1 }, Specs);
        var pr = Parameters(Specs, 12);
        var pe = Clone(pr);
        var pc = Clone(pr);
        for (int step = 1; step <= 12; step++)
        {
            var g = Gradients(Specs, 12, step);
            reference.Step(1e-2f, pr, g);
            engine.Step(1e-2f, pe, g);
            constant.Step(1e-2f, pc, g);
        }
        AssertClose(Specs, pr, pe, 1e-5, "scheduled");
        for (int t = 0; t < 2; t++) AssertClose([Specs[t]], [reference.SecondMoment(t)], [engine.CopySecondMoment(t)], 1e-5, "v");
        Assert.NotEqual(pc[0], pe[0]);
    }

    [Theory]
    [InlineData(-0.5)]
    [InlineData(1.5)]
    [InlineData(double.NaN)]
    public void A_bad_beta2_schedule_is_refused(double c)
        => Assert.Equal("Beta2Schedule", Assert.Throws<ArgumentException>(() => (Settings with { Beta2Schedule = c }).Validate()).ParamName);

    [Fact]
    public void The_beta2_schedule_without_the_factored_estimate_is_refused()
        => Assert.Equal("Beta2Schedule", Assert.Throws<ArgumentException>(() => new OptimizerSettings { Beta2Schedule = 0.8 }.Validate()).ParamName);

    [Theory]
    [InlineData(-1.0)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(double.NaN)]
    public void A_bad_update_clipping_is_refused(double d)
        => Assert.Equal("UpdateClipping", Assert.Throws<ArgumentException>(() => (Settings with { UpdateClipping = d }).Validate()).ParamName);

    [Fact]
    public void Update_clipping_without_the_factored_estimate_is_refused()
        => Assert.Equal("UpdateClipping", Assert.Throws<ArgumentException>(() => new OptimizerSettings { UpdateClipping = 1 }.Validate()).ParamName);

    [Fact]
    public void Results_are_bit_identical_for_any_thread_count()
    {
        float[][] Run(int threads)
        {
            using var o = new CountSketchAdam(Settings with { UpdateClipping = 0.5 }, Specs) { MaxThreads = threads };
            var p = Parameters(Specs, 9);
            for (int step = 1; step <= 5; step++) o.Step(1e-2f, p, Gradients(Specs, 9, step));
            return p.Concat(Enumerable.Range(0, Specs.Count).Select(o.CopySecondMoment)).ToArray();
        }
        var one = Run(1);
        foreach (int threads in new[] { 2, 3, 7 }) AssertBitIdentical(one, Run(threads));
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(2e19f)]   // g² overflows float
    public void A_non_finite_gradient_changes_nothing(float bad)
    {
        using var o = new CountSketchAdam(Settings, Specs);
        var p = Parameters(Specs, 3);
        o.Step(1e-2f, p, Gradients(Specs, 3, 1));
        var before = Clone(p);
        var v = Enumerable.Range(0, Specs.Count).Select(o.CopySecondMoment).ToArray();
        var g = Gradients(Specs, 3, 2);
        g[0][123] = bad;
        Assert.Equal(StepOutcome.SkippedNonFinite, o.Step(1e-2f, p, g));
        AssertBitIdentical(before, p);
        AssertBitIdentical(v, Enumerable.Range(0, Specs.Count).Select(o.CopySecondMoment).ToArray());
        Assert.Equal(("W", 123L), (o.LastNonFinite!.Value.TensorName, o.LastNonFinite!.Value.ElementIndex));
    }

    /// <summary>Every g² is finite but a column's sum of squares overflows: refused like an overflowing bucket.</summary>
    [Fact]
    public void A_column_whose_squares_overflow_when_summed_is_refused()
    {
        using var o = new CountSketchAdam(Settings, Specs);
        var p = Parameters(Specs, 3);
        var g = Gradients(Specs, 3, 1);
        for (int r = 0; r < 37; r++) g[0][r * 129 + 5] = 1.5e19f;   // 2.25e38 each, below float.MaxValue; 37 of them are not
        Assert.Equal(StepOutcome.SkippedNonFinite, o.Step(1e-2f, p, g));
        Assert.Equal(0, o.StepCount);
    }

    [Fact]
    public void A_checkpoint_continues_exactly()
    {
        using var a = new CountSketchAdam(Settings, Specs);
        var pa = Parameters(Specs, 4);
        for (int step = 1; step <= 3; step++) a.Step(1e-2f, pa, Gradients(Specs, 4, step));
        var stream = new MemoryStream();
        a.Save(stream);
        using var b = new CountSketchAdam(Settings, Specs);
        stream.Position = 0;
        b.Load(stream);
        var pb = Clone(pa);
        for (int step = 4; step <= 6; step++)
        {
            a.Step(1e-2f, pa, Gradients(Specs, 4, step));
            b.Step(1e-2f, pb, Gradients(Specs, 4, step));
        }
        AssertBitIdentical(pa, pb);
    }

    [Fact]
    public void Beta1_other_than_zero_without_a_quantised_first_moment_is_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => new CountSketchAdam(Settings with { Beta1 = 0.9 }, Specs));
        Assert.Equal("Beta1", e.ParamName);
        // An accelerator is accepted (device kernels: FactoredDeviceTests), gradient-norm clipping included (GradientClippingDeviceTests).
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        using var device = new CountSketchAdam(Settings, Specs, accelerator);
        Assert.Equal(37 + 129, device.CopySecondMoment(0).Length);
        using var clipped = new CountSketchAdam(Settings with { MaxGradientNorm = 1 }, Specs, accelerator);
        Assert.Equal(37 + 129, clipped.CopySecondMoment(0).Length);
    }

    [Fact]
    public void The_generated_optimizer_is_bit_identical_to_the_run_time_one()
    {
        using var generated = new Generated.FactoredModel.Optimizer();
        Assert.Equal(Settings, Generated.FactoredModel.Optimizer.DefaultSettings);
        var specs = Generated.FactoredModel.Optimizer.TensorSpecs;
        using var runtime = new CountSketchAdam(Settings, specs);
        var model = new Generated.FactoredModel();
        var p = Parameters(specs, 6);
        p[0].CopyTo(model.W, 0); p[1].CopyTo(model.T, 0); p[2].CopyTo(model.B, 0);
        var grads = new Generated.FactoredModel.Optimizer.Gradients();
        for (int step = 1; step <= 10; step++)
        {
            var g = Gradients(specs, 6, step);
            for (int t = 0; t < 3; t++) g[t].CopyTo(grads.Tensors[t], 0);
            Assert.Equal(StepOutcome.Applied, generated.Step(1e-2f, model, grads));
            Assert.Equal(StepOutcome.Applied, runtime.Step(1e-2f, p, g));
        }
        AssertBitIdentical(p, [model.W, model.T, model.B]);
        Assert.Equal(37 + 129, Generated.FactoredModel.Optimizer.W.FactorRows + Generated.FactoredModel.Optimizer.W.FactorColumns);
    }
}
