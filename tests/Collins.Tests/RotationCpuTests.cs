using Collins.Kernels;

namespace Collins.Tests;

/// <summary>
/// The Rotation CPU tile kernels (AccumulateTile, ApplyTile, and the fused UpdateApplyTile the generated optimizers call in phase 2),
/// against plain loops written here from the algorithm and against the row kernels a CPU without AVX-512 runs, bit for bit, for
/// any split of the buckets into tiles.
/// </summary>
[Trait("Category", "Kernels")]
public class RotationCpuTests
{
    /// <summary>(rows R, buckets k, last row length): ragged last rows, k below and above a 16-bucket vector and a 2048-bucket CPU tile.</summary>
    public static TheoryData<int, int, int> Shapes() => new()
    {
        { 1, 1, 1 }, { 3, 5, 2 }, { 4, 16, 16 }, { 7, 17, 9 }, { 2, 64, 33 }, { 16, 626, 617 }, { 32, 3136, 3136 }, { 5, 4099, 4000 }, { 8, 5000, 1 },
    };

    private sealed record View(int Rows, int K, int Last, int[] Rho, int[] Sigma)
    {
        public int Length => (Rows - 1) * K + Last;
        public int RowLength(int r) => r == Rows - 1 ? Last : K;
    }

    private static View MakeView(int rows, int k, int last, int seed)
    {
        var r = new Random(seed);
        return new View(rows, k, last, Enumerable.Range(0, rows).Select(_ => r.Next(k)).ToArray(),
                        Enumerable.Range(0, rows).Select(_ => r.Next(2) * 2 - 1).ToArray());
    }

    /// <summary>Nonzero values (no signed-zero ties), some large.</summary>
    private static float[] Values(int n, int seed, float scale = 1f)
    {
        var r = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = ((float)r.NextDouble() + 0.05f) * (r.Next(2) * 2 - 1) * scale * (i % 13 == 0 ? 50f : 1f);
        return x;
    }

    private static int[] Bits(ReadOnlySpan<float> x) => x.ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();

    private static IEnumerable<(int B0, int B1)> Tiles(int k, int tiles)
    {
        for (int t = 0; t < tiles; t++) yield return ((int)((long)k * t / tiles), (int)((long)k * (t + 1) / tiles));
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void AccumulateTile_sums_match_the_algorithm_bit_for_bit(int rows, int k, int last)
    {
        var w = MakeView(rows, k, last, rows * 31 + k);
        var g = Values(w.Length, k + 5);
        var em = new float[k]; var ev = new float[k];
        for (int b = 0; b < k; b++)
            for (int r = 0; r < rows; r++)
            {
                int c = ((b - w.Rho[r]) % k + k) % k;
                float x = c < w.RowLength(r) ? g[r * k + c] : 0f;
                if (r == 0) { em[b] = w.Sigma[r] * x; ev[b] = x * x; } else { em[b] += w.Sigma[r] * x; ev[b] += x * x; }
            }
        foreach (var path in new[] { "AccumulateTile", "AccumulateTile, non-temporal, aligned", "AccumulateTile, non-temporal, misaligned", "AccumulateRow" })
        foreach (int tiles in new[] { 1, 3, 7, (k + 2047) / 2048 })
        {
            string what = $"{path}, {tiles} tiles";
            bool nonTemporal = path.Contains("non-temporal");
            // Destinations as the optimizers allocate them (64-byte aligned), or one float past a line start: the non-temporal
            // path must fall back to plain stores there, and on tiles whose first bucket is not on a line.
            int skew = path.EndsWith("misaligned", StringComparison.Ordinal) ? 1 : 0;
            Span<float> sm = Filled(new AlignedFloats(k + skew).Span[skew..]), sv = Filled(new AlignedFloats(k + skew).Span[skew..]);
            Span<float> sv0 = Filled(new AlignedFloats(k + skew).Span[skew..]);
            foreach (var (b0, b1) in Tiles(k, tiles))
            {
                Assert.True(path == "AccumulateRow"
                    ? RowByRow(g, sm, sv, b0, b1, w)
                    : RotationCpu.AccumulateTile(g, sm, sv, b0, b1, k, last, w.Rho, w.Sigma, nonTemporal));
                Assert.True(path == "AccumulateRow"
                    ? RowByRow(g, default, sv0, b0, b1, w)   // β1 = 0
                    : RotationCpu.AccumulateTile(g, default, sv0, b0, b1, k, last, w.Rho, w.Sigma, nonTemporal));
            }
            Assert.True(Bits(em).SequenceEqual(Bits(sm)), "Σσg, " + what);
            Assert.True(Bits(ev).SequenceEqual(Bits(sv)), "Σg², " + what);
            Assert.True(Bits(ev).SequenceEqual(Bits(sv0)), "Σg² (β1 = 0), " + what);
        }
    }

    private static Span<float> Filled(Span<float> x) { x.Fill(float.NaN); return x; }

    [Fact]
    public void AlignedFloats_start_on_a_cache_line_and_start_zeroed()
    {
        foreach (int n in new[] { 1, 15, 16, 17, 1000, 1 << 20 })
        {
            var block = new AlignedFloats(n);
            Assert.Equal(n, block.Length);
            Assert.Equal(n, block.Span.Length);
            unsafe
            {
                fixed (float* p = block.Span) Assert.Equal(0ul, (ulong)p % 64);
            }
            Assert.True(block.Span.ToArray().All(x => BitConverter.SingleToInt32Bits(x) == 0), $"{n} floats zeroed");
        }
        Assert.Equal(0, AlignedFloats.Empty.Span.Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => new AlignedFloats(-1));
    }

    /// <summary>The public row kernel, row after row (the path a CPU without AVX-512 takes).</summary>
    private static bool RowByRow(ReadOnlySpan<float> g, Span<float> sumM, Span<float> sumV, int b0, int b1, View w)
    {
        for (int r = 0; r < w.Rows; r++)
            RotationCpu.AccumulateRow(g, sumM, sumV, b0, b1, w.K, r * w.K, w.RowLength(r), w.Rho[r], w.Sigma[r], r == 0);
        return RotationCpu.AllFinite(sumV.Slice(b0, b1 - b0));
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(3e19f)]   // finite, but its square is not
    public void A_non_finite_gradient_is_reported_by_the_tile_that_holds_it(float bad)
    {
        var w = MakeView(8, 5000, 4000, 3);
        var g = Values(w.Length, 4);
        g[3 * w.K + 1234] = bad;   // row 3, column 1234
        int badBucket = (1234 + w.Rho[3]) % w.K;
        foreach (bool vectorize in new[] { true, false })
        {
            var sm = new float[w.K]; var sv = new float[w.K];
            foreach (var (b0, b1) in Tiles(w.K, 4))
            {
                bool finite = vectorize ? RotationCpu.AccumulateTile(g, sm, sv, b0, b1, w.K, w.Last, w.Rho, w.Sigma) : RowByRow(g, sm, sv, b0, b1, w);
                Assert.Equal(badBucket < b0 || badBucket >= b1, finite);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ApplyTile_matches_the_algorithm_bit_for_bit(int rows, int k, int last)
    {
        var w = MakeView(rows, k, last, rows + 7 * k);
        var p0 = Values(w.Length, 11);
        var g = Values(w.Length, 12);
        var q = Values(k, 13, 1e-3f);
        const float decay = 0.99f;
        foreach (bool momentum in new[] { true, false })
        {
            var expected = (float[])p0.Clone();
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < w.RowLength(r); c++)
                {
                    int i = r * k + c, b = (c + w.Rho[r]) % k;
                    expected[i] = momentum ? expected[i] * decay - w.Sigma[r] * q[b] : expected[i] * decay - g[i] * q[b];
                }
            foreach (bool vectorize in new[] { true, false })
            foreach (int tiles in new[] { 1, 3, 7 })
            {
                var p = (float[])p0.Clone();
                foreach (var (b0, b1) in Tiles(k, tiles))
                {
                    if (vectorize) RotationCpu.ApplyTile(p, momentum ? default : g, q, b0, b1, k, last, w.Rho, w.Sigma, decay);
                    else
                        for (int r = 0; r < rows; r++)   // the row kernels (the path a CPU without AVX-512 takes)
                            if (momentum) RotationCpu.ApplyRowMomentum(p, q, b0, b1, k, r * k, w.RowLength(r), w.Rho[r], w.Sigma[r], decay);
                            else RotationCpu.ApplyRowGradient(p, g, q, b0, b1, k, r * k, w.RowLength(r), w.Rho[r], decay);
                }
                Assert.True(Bits(expected).SequenceEqual(Bits(p)), $"momentum {momentum}, {(vectorize ? "ApplyTile" : "row kernels")}, {tiles} tiles");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void UpdateApplyTile_matches_the_algorithm_and_the_two_kernel_sequence_bit_for_bit(int rows, int k, int last)
    {
        var w = MakeView(rows, k, last, 3 * rows + k);
        var p0 = Values(w.Length, 21);
        var g = Values(w.Length, 22);
        var sm0 = Values(k, 23, 1e-2f);
        var sv0 = Values(k, 24, 1e-2f).Select(x => x * x).ToArray();
        var m0 = Values(k, 25, 1e-3f);
        var v0 = Values(k, 26, 1e-3f).Select(x => x * x).ToArray();
        const float beta1 = 0.9f, c1 = 0.1f, beta2 = 0.999f, c2 = 0.001f, eps = 1e-8f;
        var s = StepScalars.For(7, 3e-3f, 0.9, 0.999, 0.01);
        foreach (bool hasM in new[] { true, false })
        foreach (bool mean in new[] { false, true })
        {
            // The algorithm, bucket by bucket, in the kernels' order of float operations.
            var ep = (float[])p0.Clone(); var em = (float[])m0.Clone(); var ev = (float[])v0.Clone();
            var q = new float[k];
            for (int b = 0; b < k; b++)
            {
                float v = beta2 * v0[b] + c2 * sv0[b];
                ev[b] = v;
                int cLast = ((b - w.Rho[rows - 1]) % k + k) % k;
                float vhat = mean ? v / (cLast < last ? rows : rows - 1) : v;
                float den = MathF.Sqrt(vhat) * s.InvSqrtBiasCorrection2 + eps;
                if (hasM)
                {
                    float m = beta1 * m0[b] + c1 * sm0[b];
                    em[b] = m;
                    q[b] = s.LearningRate * (m * s.InvBiasCorrection1) / den;
                }
                else q[b] = s.LearningRate / den;
            }
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < w.RowLength(r); c++)
                {
                    int i = r * k + c, b = (c + w.Rho[r]) % k;
                    ep[i] = hasM ? ep[i] * s.Decay - w.Sigma[r] * q[b] : ep[i] * s.Decay - g[i] * q[b];
                }

            foreach (bool fused in new[] { true, false })
            foreach (int tiles in new[] { 1, 3, 7 })
            {
                string what = $"{(fused ? "UpdateApplyTile" : "UpdateBuckets + ApplyTile")}, β1 {(hasM ? "≠" : "=")} 0, {(mean ? "Mean" : "Sum")}, {tiles} tiles";
                var p = (float[])p0.Clone(); var v = (float[])v0.Clone(); var sv = (float[])sv0.Clone();
                var m = hasM ? (float[])m0.Clone() : Array.Empty<float>(); var sm = hasM ? (float[])sm0.Clone() : Array.Empty<float>();
                foreach (var (b0, b1) in Tiles(k, tiles))
                {
                    if (fused)
                        RotationCpu.UpdateApplyTile(p, hasM ? default : g, m, v, sm, sv, b0, b1, k, last, w.Rho, w.Sigma, beta1, c1, beta2, c2, eps, in s, mean);
                    else
                    {
                        if (mean) RotationCpu.UpdateBucketsRotationMean(m, v, sm, sv, b0, b1, beta1, c1, beta2, c2, eps, in s, rows, k, w.Rho[rows - 1], last);
                        else RotationCpu.UpdateBuckets(m, v, sm, sv, b0, b1, beta1, c1, beta2, c2, eps, in s);
                        RotationCpu.ApplyTile(p, hasM ? default : g, hasM ? sm : sv, b0, b1, k, last, w.Rho, w.Sigma, s.Decay);
                    }
                }
                Assert.True(Bits(ep).SequenceEqual(Bits(p)), "parameters, " + what);
                Assert.True(Bits(ev).SequenceEqual(Bits(v)), "second moment, " + what);
                if (hasM) Assert.True(Bits(em).SequenceEqual(Bits(m)), "first moment, " + what);
            }
        }
    }

    [Fact]
    public void UpdateApplyTile_refuses_buffers_that_disagree_before_writing()
    {
        var w = MakeView(4, 64, 33, 9);
        var p = Values(w.Length, 1); var before = (float[])p.Clone();
        var m = new float[64]; var v = new float[64]; var sm = new float[64]; var sv = new float[64];
        var s = StepScalars.For(1, 1e-3f, 0.9, 0.999, 0);
        Assert.Throws<ArgumentException>(() => RotationCpu.UpdateApplyTile(p, default, m, new float[63], sm, sv, 0, 64, 64, 33, w.Rho, w.Sigma, 0.9f, 0.1f, 0.999f, 0.001f, 1e-8f, in s));
        Assert.Throws<ArgumentException>(() => RotationCpu.UpdateApplyTile(p, default, m, v, sm, sv, 0, 65, 64, 33, w.Rho, w.Sigma, 0.9f, 0.1f, 0.999f, 0.001f, 1e-8f, in s));
        Assert.Throws<ArgumentException>(() => RotationCpu.UpdateApplyTile(p.AsSpan(1), default, m, v, sm, sv, 0, 64, 64, 33, w.Rho, w.Sigma, 0.9f, 0.1f, 0.999f, 0.001f, 1e-8f, in s));
        Assert.Throws<ArgumentException>(() => RotationCpu.UpdateApplyTile(p, default, default, v, default, sv, 0, 64, 64, 33, w.Rho, w.Sigma, 0f, 1f, 0.999f, 0.001f, 1e-8f, in s)); // β1 = 0 needs g
        Assert.True(Bits(before).SequenceEqual(Bits(p)));
        Assert.True(m.All(x => x == 0) && v.All(x => x == 0));
    }
}
