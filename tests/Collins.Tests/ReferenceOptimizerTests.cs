using System.Numerics;
using Collins.Reference;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

/// <summary>
/// The reference against numbers derived here, by hand, from the formulas of DEVELOPERS.md.
/// d = 5 with Ratio 3 gives k = ceil(5/3) = 2 buckets and rows = ceil(5/2) = 3 (the Rotation view
/// is [g0 g1 | g2 g3 | g4 _]): two full rows and a ragged last row of one entry, so one bucket holds
/// three entries and the other two — small enough to follow by hand, and it exercises collisions,
/// signs, the ragged tail and the Mean occupancy.
/// </summary>
public class ReferenceOptimizerTests
{
    private static readonly float[] P0 = { 1.0f, -2.0f, 0.5f, 0.0f, 3.0f };
    private static readonly float[] G1 = { 0.5f, -1.0f, 0.25f, 2.0f, -0.75f };
    private static readonly float[] G2 = { -0.5f, 0.125f, 1.5f, -1.0f, 0.375f };
    private const float Lr = 0.01f;

    private static TensorSpec Spec5 => new("w", new[] { 5 }, Sketching: TensorSketching.Sketched);

    /// <summary>Rotation buckets and signs straight from the row constants: i = r·k + c → ((c + ρ_r) mod k, σ_r).</summary>
    private static (int[] bucket, int[] sign) RotationHash(TensorPlan plan)
    {
        int k = plan.Buckets;
        var bucket = new int[plan.Length]; var sign = new int[plan.Length];
        for (int i = 0; i < plan.Length; i++)
        {
            int r = i / k, c = i % k;
            bucket[i] = (c + plan.Rotations[r]) % k;
            sign[i] = plan.Signs[r];
        }
        return (bucket, sign);
    }

    /// <summary>Carter–Wegman buckets and signs with arbitrary-precision arithmetic (independent of ModMersenne).</summary>
    private static (int[] bucket, int[] sign) UniversalHash(TensorPlan plan)
    {
        var p = new BigInteger(2147483647);
        var bucket = new int[plan.Length]; var sign = new int[plan.Length];
        for (int i = 0; i < plan.Length; i++)
        {
            bucket[i] = (int)(((plan.UniversalA * (BigInteger)i + plan.UniversalB) % p) % plan.Buckets);
            sign[i] = (((plan.UniversalSignA * (BigInteger)i + plan.UniversalSignB) % p) & 1) == 0 ? 1 : -1;
        }
        return (bucket, sign);
    }

    /// <summary>
    /// Two steps of the algorithm written out term by term for d = 5, k = 2, all in double.
    /// Returns the parameters and sketches after step 1 and step 2.
    /// </summary>
    private static (double[] p1, double[] p2, double[] m2, double[] v2) HandWorked(
        int[] bucket, int[] sign, double beta1, double wd, bool mean)
    {
        const double beta2 = 0.999, eps = 1e-8, lr = Lr;
        // Occupancy: how many of the five entries land in each of the two buckets.
        var occ = new double[2];
        for (int i = 0; i < 5; i++) occ[bucket[i]]++;

        // ---- Step 1: t = 1, sketches start at 0.
        double bc1 = beta1 == 0 ? 1 : 1 - beta1;          // 1 − β1¹
        double bc2 = 1 - beta2;                           // 1 − β2¹
        var sumM1 = new double[2]; var sumV1 = new double[2];
        for (int i = 0; i < 5; i++) { sumM1[bucket[i]] += sign[i] * (double)G1[i]; sumV1[bucket[i]] += (double)G1[i] * G1[i]; }
        var m1 = new double[2]; var v1 = new double[2];
        for (int b = 0; b < 2; b++) { m1[b] = (1 - beta1) * sumM1[b]; v1[b] = (1 - beta2) * sumV1[b]; }
        var p1 = new double[5];
        for (int i = 0; i < 5; i++)
        {
            double mHat = beta1 == 0 ? G1[i] : sign[i] * m1[bucket[i]] / bc1;
            double vHat = v1[bucket[i]] / bc2 / (mean ? occ[bucket[i]] : 1);
            p1[i] = P0[i] - Lr * wd * P0[i] - lr * mHat / (Math.Sqrt(vHat) + eps);
        }

        // ---- Step 2: t = 2.
        bc1 = beta1 == 0 ? 1 : 1 - beta1 * beta1;
        bc2 = 1 - beta2 * beta2;
        var sumM2 = new double[2]; var sumV2 = new double[2];
        for (int i = 0; i < 5; i++) { sumM2[bucket[i]] += sign[i] * (double)G2[i]; sumV2[bucket[i]] += (double)G2[i] * G2[i]; }
        var m2 = new double[2]; var v2 = new double[2];
        for (int b = 0; b < 2; b++) { m2[b] = beta1 * m1[b] + (1 - beta1) * sumM2[b]; v2[b] = beta2 * v1[b] + (1 - beta2) * sumV2[b]; }
        var p2 = new double[5];
        for (int i = 0; i < 5; i++)
        {
            double mHat = beta1 == 0 ? G2[i] : sign[i] * m2[bucket[i]] / bc1;
            double vHat = v2[bucket[i]] / bc2 / (mean ? occ[bucket[i]] : 1);
            double pPrev = (float)p1[i]; // parameters are stored as float between steps
            p2[i] = pPrev - Lr * wd * pPrev - lr * mHat / (Math.Sqrt(vHat) + eps);
        }
        return (p1, p2, m2, v2);
    }

    [Theory]
    [InlineData(SketchLayout.Rotation, 0.9, SecondMomentEstimate.Sum, 0.0)]
    [InlineData(SketchLayout.Rotation, 0.9, SecondMomentEstimate.Mean, 0.1)]
    [InlineData(SketchLayout.Rotation, 0.0, SecondMomentEstimate.Sum, 0.1)]
    [InlineData(SketchLayout.Universal, 0.9, SecondMomentEstimate.Sum, 0.1)]
    [InlineData(SketchLayout.Universal, 0.0, SecondMomentEstimate.Mean, 0.0)]
    public void Reference_matches_hand_worked_two_steps_d5_k2(SketchLayout layout, double beta1, SecondMomentEstimate estimate, double wd)
    {
        var settings = new OptimizerSettings { Ratio = 3, Beta1 = beta1, Layout = layout, SecondMoment = estimate, WeightDecay = wd, Seed = 7 };
        var opt = new ReferenceOptimizer(settings, new[] { Spec5 });
        var plan = opt.Tensors[0];
        Assert.False(plan.IsDense);
        Assert.Equal(2, plan.Buckets);
        if (layout == SketchLayout.Rotation) Assert.Equal(3, plan.Rows);

        var (bucket, sign) = layout == SketchLayout.Rotation ? RotationHash(plan) : UniversalHash(plan);
        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(bucket[i], plan.Bucket(i));
            Assert.Equal(sign[i], plan.Sign(i));
        }
        if (layout == SketchLayout.Rotation)
        {
            // Rows 0 and 1 put one entry in each bucket; the ragged row 2 only column 0, bucket ρ_2.
            var occ = plan.Occupancy();
            Assert.Equal(3, occ[plan.Rotations[2]]);
            Assert.Equal(2, occ[1 - plan.Rotations[2]]);
        }

        var (p1, p2, m2, v2) = HandWorked(bucket, sign, beta1, wd, estimate == SecondMomentEstimate.Mean);
        var p = new[] { (float[])P0.Clone() };
        opt.Step(Lr, p, new[] { (float[])G1.Clone() });
        AssertClose(p1, p[0], 1e-6, 1e-3, "p after step 1");
        opt.Step(Lr, p, new[] { (float[])G2.Clone() });
        Assert.Equal(2, opt.StepCount);
        AssertClose(p2, p[0], 1e-6, 1e-3, "p after step 2");
        AssertClose(v2, opt.SecondMoment(0), 1e-6, 1e-12, "v after step 2");
        if (beta1 == 0) Assert.Empty(opt.FirstMoment(0));
        else AssertClose(m2, opt.FirstMoment(0), 1e-6, 1e-9, "m after step 2");

        // The step actually moved something (guards against a vacuous pass).
        Assert.NotEqual(P0[0], p[0][0]);
    }

    [Theory]
    [InlineData(0.9, 0.0)]
    [InlineData(0.9, 0.05)]
    [InlineData(0.0, 0.05)]
    public void Ratio1_equals_textbook_AdamW_over_20_steps(double beta1, double wd)
    {
        var settings = new OptimizerSettings { Ratio = 1, Beta1 = beta1, WeightDecay = wd, DenseThreshold = 0 };
        var specs = new[] { new TensorSpec("a", new[] { 37 }), new TensorSpec("b", new[] { 5, 7 }), new TensorSpec("c", new[] { 5000 }) };
        RunAgainstDense(settings, specs, seed: 1);
    }

    [Theory]
    [InlineData(SketchLayout.Rotation)]
    [InlineData(SketchLayout.Universal)]
    public void Dense_tensors_in_a_sketched_optimizer_equal_textbook_AdamW(SketchLayout layout)
    {
        var settings = new OptimizerSettings { Ratio = 8, Layout = layout, WeightDecay = 0.01 };
        // One forced dense, one dense because it is below DenseThreshold (4096).
        var specs = new[] { new TensorSpec("forced", new[] { 64, 80 }, Sketching: TensorSketching.Dense), new TensorSpec("small", new[] { 100 }) };
        RunAgainstDense(settings, specs, seed: 2);
    }

    private static void RunAgainstDense(OptimizerSettings settings, TensorSpec[] specs, int seed)
    {
        var opt = new ReferenceOptimizer(settings, specs);
        Assert.All(opt.Tensors, t => Assert.True(t.IsDense));
        var dense = new DenseAdamWReference(settings, opt.Tensors.Select(t => t.Length).ToArray());
        var rng = new Random(seed);
        var p = opt.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        var q = Clone(p);
        var start = Clone(p);
        // Relative 1e-6 with a floor of 0.1 (parameters start in U(−1, 1)): the reference stores its
        // moments as float, the textbook AdamW in double, so parameters that cross zero differ by ~1e-8.
        for (int step = 1; step <= 20; step++)
        {
            var g = opt.Tensors.Select(t => Normal(rng, t.Length, 0.1 * step)).ToArray();
            opt.Step(1e-2f, p, g);
            dense.Step(1e-2f, q, g);
            for (int n = 0; n < p.Length; n++)
                AssertClose(q[n], p[n], 1e-6, 0.1, $"step {step} tensor {opt.Tensors[n].Name}");
        }
        // Sanity: the parameters moved away from their start.
        for (int n = 0; n < p.Length; n++) Assert.NotEqual(start[n], p[n]);
    }

    [Fact]
    public void Beta1_zero_keeps_no_first_moment_and_uses_the_gradient()
    {
        var settings = new OptimizerSettings { Ratio = 4, Beta1 = 0 };
        var opt = new ReferenceOptimizer(settings, new[] { new TensorSpec("w", new[] { 64 }, Sketching: TensorSketching.Sketched) });
        Assert.Empty(opt.FirstMoment(0));
        Assert.Equal(16, opt.SecondMoment(0).Length);
        Assert.False(opt.Tensors[0].HasFirstMoment);

        // And it steps with m̂ = g, the current gradient: worked here from the formulas with the plan's
        // buckets, two steps (the second would differ if any trace of step 1's gradient were kept in m̂).
        var plan = opt.Tensors[0];
        var rng = new Random(12);
        var p = Uniform(rng, 64);
        var expected = p.Select(x => (double)x).ToArray();
        var v = new double[16];
        const double lr = 1e-2, beta2 = 0.999, eps = 1e-8;
        for (int t = 1; t <= 2; t++)
        {
            var g = Normal(rng, 64);
            var sumV = new double[16];
            for (int i = 0; i < 64; i++) sumV[plan.Bucket(i)] += (double)g[i] * g[i];
            for (int b = 0; b < 16; b++) v[b] = (float)(beta2 * v[b] + (1 - beta2) * sumV[b]);
            double bc2 = 1 - Math.Pow(beta2, t);
            for (int i = 0; i < 64; i++)
                expected[i] = (float)(expected[i] - lr * g[i] / (Math.Sqrt(v[plan.Bucket(i)] / bc2) + eps));
            opt.Step((float)lr, new[] { p }, new[] { g });
            Assert.Equal(t, opt.StepCount);
            AssertClose(expected, p, 1e-6, 1e-3, $"step {t}");
            AssertClose(v.Select(x => (float)x).ToArray(), opt.SecondMoment(0), 1e-6, 1e-6, $"v after step {t}");
        }
    }

    [Fact]
    public void Reference_rejects_wrong_buffer_counts_and_lengths()
    {
        var opt = new ReferenceOptimizer(new OptimizerSettings(), new[] { new TensorSpec("w", 10) });
        Assert.Throws<ArgumentException>(() => opt.Step(0.1f, Array.Empty<float[]>(), Array.Empty<float[]>()));
        Assert.Throws<ArgumentException>(() => opt.Step(0.1f, new[] { new float[9] }, new[] { new float[10] }));
        Assert.Equal(0, opt.StepCount);
    }
}
