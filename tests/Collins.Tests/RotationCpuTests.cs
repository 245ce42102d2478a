using Collins.Kernels;

namespace Collins.Tests;

/// <summary>
/// The Rotation CPU tile kernels the generated optimizers call, against a plain loop written here from the algorithm (bucket
/// sums row by row, then the moment update and the coefficient in UpdateBuckets' operation order), bit for bit: the sums-only
/// kernel, the streaming kernel on its AVX-512 path writing straight to aligned workspaces (with and without non-temporal
/// stores), the same path staged through the stack (unaligned workspaces), and the portable row-by-row paths, for any split of
/// the buckets into tiles.
/// </summary>
public class RotationCpuTests
{
    private const float B1 = 0.9f, C1 = 0.1f, B2 = 0.999f, C2 = 0.001f, Eps = 1e-8f;

    /// <summary>(rows R, buckets k, last row length): ragged last rows, k below and above a 16-bucket vector and the 2048-bucket stage.</summary>
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

    /// <summary>The algorithm, one bucket at a time: x_r = g[r·k + (b − ρ_r) mod k] (0 where row r has no such column).</summary>
    private static (float[] M, float[] V, float[] Q) Expected(View w, float[] g, float[] m, float[] v, bool hasM, bool mean, StepScalars s)
    {
        var nm = new float[hasM ? w.K : 0]; var nv = new float[w.K]; var q = new float[w.K];
        for (int b = 0; b < w.K; b++)
        {
            float sm = 0f, sv = 0f;
            for (int r = 0; r < w.Rows; r++)
            {
                int c = ((b - w.Rho[r]) % w.K + w.K) % w.K;
                float x = c < w.RowLength(r) ? g[r * w.K + c] : 0f;
                float sx = w.Sigma[r] * x;
                if (r == 0) { sm = sx; sv = x * x; } else { sm += sx; sv += x * x; }
            }
            float vNew = B2 * v[b] + C2 * sv;
            int lastColumn = ((b - w.Rho[w.Rows - 1]) % w.K + w.K) % w.K;
            float occupancy = lastColumn < w.Last ? w.Rows : w.Rows - 1;
            float vhat = mean ? vNew / occupancy : vNew;
            float den = MathF.Sqrt(vhat) * s.InvSqrtBiasCorrection2 + Eps;
            nv[b] = vNew;
            if (hasM)
            {
                nm[b] = B1 * m[b] + C1 * sm;
                q[b] = s.LearningRate * (nm[b] * s.InvBiasCorrection1) / den;
            }
            else q[b] = s.LearningRate / den;
        }
        return (nm, nv, q);
    }

    private static int[] Bits(ReadOnlySpan<float> x) => x.ToArray().Select(BitConverter.SingleToInt32Bits).ToArray();

    private static IEnumerable<(int B0, int B1)> Tiles(int k, int tiles)
    {
        for (int t = 0; t < tiles; t++) yield return ((int)((long)k * t / tiles), (int)((long)k * (t + 1) / tiles));
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void AccumulateMomentsTile_matches_the_algorithm_bit_for_bit_on_every_path(int rows, int k, int last)
    {
        var w = MakeView(rows, k, last, rows * 1000 + k);
        var g = Values(w.Length, k);
        var m = Values(k, k + 1, 1e-3f);
        var v = Values(k, k + 2, 1e-4f).Select(MathF.Abs).ToArray();
        var s = StepScalars.For(7, 3e-3f, B1, B2, 0);
        foreach (bool hasM in new[] { true, false })
        foreach (bool mean in new[] { false, true })
        {
            var (em, ev, eq) = Expected(w, g, m, v, hasM, mean, s);
            var mIn = hasM ? m : Array.Empty<float>();
            foreach (string path in new[] { "aligned", "aligned, streamed", "unaligned", "unaligned, streamed", "portable" })
            foreach (int tiles in new[] { 1, 2, 3, 7 })
            {
                // Aligned workspaces take the direct path (registers to memory) where a tile starts on a 16-bucket boundary; plain
                // arrays shifted by one float never do (staged through the stack); "streamed" lowers the size from which the
                // stores are non-temporal to 0 (the values cannot differ, so other tests running meanwhile are unaffected);
                // "portable" is the row-by-row path.
                Span<float> nm, nv, q;
                if (path.StartsWith("aligned")) { nm = new AlignedFloats(hasM ? k : 0); nv = new AlignedFloats(k); q = new AlignedFloats(k); }
                else { nm = new float[hasM ? k + 1 : 0].AsSpan(hasM ? 1 : 0); nv = new float[k + 1].AsSpan(1); q = new float[k + 1].AsSpan(1); }
                nm.Fill(float.NaN); nv.Fill(float.NaN); q.Fill(float.NaN);   // stale workspace: every bucket must be written
                var mCopy = (float[])mIn.Clone(); var vCopy = (float[])v.Clone();
                int threshold = RotationCpu.NonTemporalMinLength;
                if (path.EndsWith("streamed")) RotationCpu.NonTemporalMinLength = 0;
                try
                {
                    foreach (var (b0, b1) in Tiles(k, tiles))
                        Assert.True(RotationCpu.AccumulateMomentsTile(g, mCopy, vCopy, nm, nv, q, b0, b1, k, last, w.Rho, w.Sigma,
                                                                      B1, C1, B2, C2, Eps, mean, s, vectorize: path != "portable"));
                }
                finally { RotationCpu.NonTemporalMinLength = threshold; }
                string what = $"{path}, {tiles} tiles, β1 {(hasM ? "0.9" : "0")}, {(mean ? "Mean" : "Sum")}";
                Assert.True(Bits(em).SequenceEqual(Bits(nm)), "m' " + what);
                Assert.True(Bits(ev).SequenceEqual(Bits(nv)), "v' " + what);
                Assert.True(Bits(eq).SequenceEqual(Bits(q)), "q " + what);
                Assert.Equal(Bits(mIn), Bits(mCopy));   // the state is only read
                Assert.Equal(Bits(v), Bits(vCopy));
            }
        }
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
        foreach (bool vectorize in new[] { true, false })
        foreach (int tiles in new[] { 1, 3, 7 })
        {
            var sm = Enumerable.Repeat(float.NaN, k).ToArray(); var sv = Enumerable.Repeat(float.NaN, k).ToArray();
            var sv0 = Enumerable.Repeat(float.NaN, k).ToArray();
            foreach (var (b0, b1) in Tiles(k, tiles))
            {
                Assert.True(vectorize
                    ? RotationCpu.AccumulateTile(g, sm, sv, b0, b1, k, last, w.Rho, w.Sigma)
                    : RowByRow(g, sm, sv, b0, b1, w));
                Assert.True(vectorize
                    ? RotationCpu.AccumulateTile(g, default, sv0, b0, b1, k, last, w.Rho, w.Sigma)   // β1 = 0
                    : RowByRow(g, default, sv0, b0, b1, w));
            }
            Assert.True(Bits(em).SequenceEqual(Bits(sm)), $"Σσg, {(vectorize ? "AccumulateTile" : "AccumulateRow")}, {tiles} tiles");
            Assert.True(Bits(ev).SequenceEqual(Bits(sv)), $"Σg², vectorize {vectorize}, {tiles} tiles");
            Assert.True(Bits(ev).SequenceEqual(Bits(sv0)), $"Σg² (β1 = 0), vectorize {vectorize}, {tiles} tiles");
        }
    }

    /// <summary>The public row kernel, row after row (the path a CPU without AVX-512 takes).</summary>
    private static bool RowByRow(float[] g, Span<float> sumM, Span<float> sumV, int b0, int b1, View w)
    {
        for (int r = 0; r < w.Rows; r++)
            RotationCpu.AccumulateRow(g, sumM, sumV, b0, b1, w.K, r * w.K, w.RowLength(r), w.Rho[r], w.Sigma[r], r == 0);
        return sumV.Slice(b0, b1 - b0).ToArray().All(float.IsFinite);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(3e19f)]   // finite, but its square is not
    public void A_non_finite_gradient_is_reported_by_the_tile_that_holds_it_and_the_state_is_untouched(float bad)
    {
        var w = MakeView(8, 5000, 4000, 3);
        var g = Values(w.Length, 4);
        int i = 3 * w.K + 1234;   // row 3, column 1234
        g[i] = bad;
        int badBucket = (1234 + w.Rho[3]) % w.K;
        var m = Values(w.K, 5, 1e-3f); var v = Values(w.K, 6, 1e-4f).Select(MathF.Abs).ToArray();
        var m0 = (float[])m.Clone(); var v0 = (float[])v.Clone();
        var s = StepScalars.For(1, 1e-3f, B1, B2, 0);
        foreach (bool vectorize in new[] { true, false })
        {
            var nm = new AlignedFloats(w.K); var nv = new AlignedFloats(w.K); var q = new AlignedFloats(w.K);
            foreach (var (b0, b1) in Tiles(w.K, 4))
            {
                bool finite = RotationCpu.AccumulateMomentsTile(g, m, v, nm, nv, q, b0, b1, w.K, w.Last, w.Rho, w.Sigma, B1, C1, B2, C2, Eps, false, s, vectorize);
                Assert.Equal(badBucket < b0 || badBucket >= b1, finite);
            }
            Assert.Equal(Bits(m0), Bits(m));
            Assert.Equal(Bits(v0), Bits(v));
        }
    }

    [Fact]
    public void AccumulateMomentsTile_refuses_workspaces_that_alias_the_state()
    {
        var w = MakeView(4, 64, 64, 9);
        var g = Values(w.Length, 1);
        var m = new float[64]; var v = new float[64]; var q = new float[64]; var other = new float[64];
        var s = StepScalars.For(1, 1e-3f, B1, B2, 0);
        Assert.Throws<ArgumentException>(() => RotationCpu.AccumulateMomentsTile(g, m, v, m, other, q, 0, 64, 64, 64, w.Rho, w.Sigma, B1, C1, B2, C2, Eps, false, s));
        Assert.Throws<ArgumentException>(() => RotationCpu.AccumulateMomentsTile(g, m, v, other, q, q, 0, 64, 64, 64, w.Rho, w.Sigma, B1, C1, B2, C2, Eps, false, s));
        Assert.Throws<ArgumentException>(() => RotationCpu.AccumulateMomentsTile(g, m, v, other, v, q, 0, 64, 64, 64, w.Rho, w.Sigma, B1, C1, B2, C2, Eps, false, s));
        Assert.Throws<ArgumentException>(() => RotationCpu.AccumulateMomentsTile(g, m, v, other, new float[64], new float[63], 0, 64, 64, 64, w.Rho, w.Sigma, B1, C1, B2, C2, Eps, false, s));
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
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(1000)]
    [InlineData(1 << 20)]
    public void AlignedFloats_start_on_a_cache_line_and_start_zeroed(int length)
    {
        var block = new AlignedFloats(length);
        Assert.Equal(length, block.Length);
        Span<float> span = block;
        Assert.Equal(length, span.Length);
        Assert.True(span.IndexOfAnyExcept(0f) < 0);
        if (length > 0)
            unsafe { fixed (float* p = span) Assert.Equal(0, (int)((nuint)p % 64)); }
        span.Fill(2f);
        Assert.Equal(Enumerable.Repeat(2f, length), block.ToArray());
    }
}
