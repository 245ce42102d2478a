using Collins.Kernels;

namespace Collins.Tests;

/// <summary>
/// The Rotation CPU tile kernels the generated optimizers call (AccumulateTile, ApplyTile), against plain loops written here from
/// the algorithm and against the row kernels a CPU without AVX-512 runs, bit for bit, for any split of the buckets into tiles.
/// (Until now they were tested only through whole optimizers, within a tolerance.)
/// </summary>
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
        foreach (bool vectorize in new[] { true, false })
        foreach (int tiles in new[] { 1, 3, 7 })
        {
            string what = $"{(vectorize ? "AccumulateTile" : "AccumulateRow")}, {tiles} tiles";
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
            Assert.True(Bits(em).SequenceEqual(Bits(sm)), "Σσg, " + what);
            Assert.True(Bits(ev).SequenceEqual(Bits(sv)), "Σg², " + what);
            Assert.True(Bits(ev).SequenceEqual(Bits(sv0)), "Σg² (β1 = 0), " + what);
        }
    }

    /// <summary>The public row kernel, row after row (the path a CPU without AVX-512 takes).</summary>
    private static bool RowByRow(float[] g, Span<float> sumM, Span<float> sumV, int b0, int b1, View w)
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
}
