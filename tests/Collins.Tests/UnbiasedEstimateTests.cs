using Collins.Reference;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

/// <summary>
/// E[m̂[i]] = m[i]: over the hash family (the seed picks the member), the Count-Sketch estimate of
/// the first moment is unbiased because E[h2(i)·h2(j)] = 0 for i ≠ j. With a fixed gradient g and
/// one step, the true bias-corrected first moment is g itself, so the mean over 200 seeds of
/// m̂[i] = h2(i)·sketch_m[h1(i)]/bc1 must lie within 3 standard errors of g[i] for every i.
/// </summary>
public class UnbiasedEstimateTests
{
    [Theory]
    [InlineData(SketchLayout.Rotation)]
    [InlineData(SketchLayout.Universal)]
    public void First_moment_estimate_is_unbiased_over_seeds(SketchLayout layout)
    {
        const int d = 64, seeds = 200;
        const double beta1 = 0.9;
        var g = Normal(new Random(12345), d);
        var sum = new double[d];
        var sumSq = new double[d];
        for (int seed = 0; seed < seeds; seed++)
        {
            var settings = new OptimizerSettings { Ratio = 4, Beta1 = beta1, Layout = layout, Seed = seed };
            var opt = new ReferenceOptimizer(settings, new[] { new TensorSpec("w", new[] { d }, Sketching: TensorSketching.Sketched) });
            var plan = opt.Tensors[0];
            Assert.Equal(16, plan.Buckets);
            opt.Step(1e-3f, new[] { new float[d] }, new[] { (float[])g.Clone() });
            var m = opt.FirstMoment(0);
            double bc1 = 1 - beta1;
            for (int i = 0; i < d; i++)
            {
                double mHat = plan.Sign(i) * (double)m[plan.Bucket(i)] / bc1;
                sum[i] += mHat;
                sumSq[i] += mHat * mHat;
            }
        }
        int noisy = 0;
        for (int i = 0; i < d; i++)
        {
            double mean = sum[i] / seeds;
            double variance = (sumSq[i] - seeds * mean * mean) / (seeds - 1);
            double se = Math.Sqrt(Math.Max(variance, 0) / seeds);
            if (variance > 1e-6) noisy++;
            Assert.True(Math.Abs(mean - g[i]) <= 3 * se + 1e-6,
                $"{layout} entry {i}: mean m̂ over {seeds} seeds {mean:G6}, true {g[i]:G6}, standard error {se:G4}.");
        }
        // The estimate really is noisy (collisions happen), so the test above is not vacuous.
        Assert.Equal(d, noisy);
    }

    [Fact]
    public void Unsigned_sketch_would_be_biased_so_the_test_can_fail()
    {
        // Negative control: the same statistic without the sign hash (h2 ≡ 1 when reading back and
        // accumulating) is biased by Σ_{j≠i, same bucket} g[j]; with an all-positive gradient the
        // mean over seeds is far above g[i]. This shows 200 seeds and 3 standard errors can detect a bias.
        const int d = 64, seeds = 200;
        var g = Enumerable.Range(0, d).Select(i => 1f + (i % 5) * 0.1f).ToArray();
        int detected = 0;
        for (int i = 0; i < d; i++)
        {
            double sum = 0, sumSq = 0;
            for (int seed = 0; seed < seeds; seed++)
            {
                var plan = new TensorPlan(new TensorSpec("w", new[] { d }, Sketching: TensorSketching.Sketched),
                                          new OptimizerSettings { Ratio = 4, Layout = SketchLayout.Universal, Seed = seed });
                double bucketSum = 0;
                for (int j = 0; j < d; j++) if (plan.Bucket(j) == plan.Bucket(i)) bucketSum += g[j];
                sum += bucketSum; sumSq += bucketSum * bucketSum;
            }
            double mean = sum / seeds, se = Math.Sqrt((sumSq - seeds * mean * mean) / (seeds - 1) / seeds);
            if (Math.Abs(mean - g[i]) > 3 * se) detected++;
        }
        Assert.Equal(d, detected);
    }
}
