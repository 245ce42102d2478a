using Collins;
using Xunit.Abstractions;

namespace TinyLm.Tests;

/// <summary>
/// The quantisation maps of the anchors, checked against the papers' definitions: code counts, order, zero, the values
/// the formulas give, nearest-code encoding and the round-trip error each map's spacing allows.
/// </summary>
public class QuantizationMapTests
{
    private static void AssertAscending(QuantizationMap map)
    {
        for (int k = 1; k < map.Count; k++) Assert.True(map.Values[k - 1] < map.Values[k], $"{map.Name}: codes {k - 1} and {k} not ascending");
    }

    /// <summary>Positive values below 1 in the decade [10^−(e+1), 10^−e).</summary>
    private static int InDecade(QuantizationMap map, int e) =>
        map.Values.Count(v => v > 0 && v < 1 && v >= Math.Pow(10, -(e + 1)) * (1 - 1e-6) && v < Math.Pow(10, -e) * (1 - 1e-6));

    [Fact]
    public void Signed_dynamic_8_bit_map_has_256_codes_zero_one_and_the_tree_layout()
    {
        var map = QuantizationMap.DynamicSigned(8);
        Assert.Equal(256, map.Count);
        AssertAscending(map);
        Assert.Contains(0f, map.Values);
        Assert.Equal(1f, map.Values[^1]);
        // Sign, E zeros, indicator, 6 − E fraction bits: 2^(6−E) magnitudes in decade E, the midpoints of [0.1, 1]·10^−E.
        for (int e = 0; e <= 6; e++) Assert.Equal(1 << (6 - e), InDecade(map, e));
        Assert.Equal(-(0.1 + 0.9 * 63.5 / 64), map.Values[0], 6);
        Assert.Equal(0.1 + 0.9 * 63.5 / 64, map.Values[^2], 6);
        Assert.Equal(1e-6 * 0.55, map.Values.Where(v => v > 0).Min(), 12);
        foreach (float v in map.Values.Where(v => v > 0 && v < 1)) Assert.Contains(-v, map.Values);
        Assert.Equal(127, map.Values.Count(v => v < 0));
    }

    [Fact]
    public void Unsigned_dynamic_8_bit_map_uses_the_sign_bit_as_one_more_fraction_bit()
    {
        var map = QuantizationMap.DynamicUnsigned(8);
        Assert.Equal(256, map.Count);
        AssertAscending(map);
        Assert.Equal(0f, map.Values[0]);
        Assert.Equal(1f, map.Values[^1]);
        Assert.DoesNotContain(map.Values, v => v < 0);
        for (int e = 0; e <= 6; e++) Assert.Equal(1 << (7 - e), InDecade(map, e));
        Assert.Equal(0.1 + 0.9 * 127.5 / 128, map.Values[^2], 6);
        Assert.Equal(1e-6 * (0.1 + 0.9 * 0.25), map.Values[1], 12);
    }

    [Fact]
    public void Signed_dynamic_exponent_4_bit_map_has_16_codes_with_exact_zero()
    {
        var map = QuantizationMap.DynamicSigned(4);
        Assert.Equal(16, map.Count);
        AssertAscending(map);
        Assert.Contains(0f, map.Values);
        // By hand: E = 2 (F 0): 0.01·0.55; E = 1 (F 1): 0.1·(0.1 + 0.9·{0.25, 0.75}); E = 0 (F 2): 0.1 + 0.9·{1, 3, 5, 7}/8; and +1.
        double[] positive = [0.0055, 0.0325, 0.0775, 0.2125, 0.4375, 0.6625, 0.8875, 1.0];
        Assert.Equal(positive.Length, map.Values.Count(v => v > 0));
        foreach (var (expected, actual) in positive.Zip(map.Values.Where(v => v > 0))) Assert.Equal(expected, actual, 6);
        Assert.Equal(Enumerable.Reverse(positive[..^1]).Select(v => -v), map.Values.Where(v => v < 0).Select(v => (double)v), new RoundedEquality(6));
    }

    [Fact]
    public void Linear_4_bit_map_without_zero_is_i_plus_1_over_16()
    {
        var map = QuantizationMap.LinearWithoutZero(4);
        Assert.Equal(16, map.Count);
        AssertAscending(map);
        Assert.DoesNotContain(0f, map.Values);
        for (int i = 0; i < 16; i++) Assert.Equal((i + 1) / 16f, map.Values[i]);
        Assert.Equal(0, map.Encode(0f));
        Assert.Equal(1 / 16f, map.Decode(map.Encode(0f)));
    }

    public static TheoryData<string> Maps => new() { "signed8", "unsigned8", "signed4", "linear4" };

    private static QuantizationMap Map(string name) => name switch
    {
        "signed8" => QuantizationMap.DynamicSigned(8),
        "unsigned8" => QuantizationMap.DynamicUnsigned(8),
        "signed4" => QuantizationMap.DynamicSigned(4),
        _ => QuantizationMap.LinearWithoutZero(4),
    };

    [Theory]
    [MemberData(nameof(Maps))]
    public void Encode_returns_the_nearest_code(string name)
    {
        var map = Map(name);
        var rng = new Random(7);
        for (int n = 0; n < 20_000; n++)
        {
            // Uniform over [−1.2, 1.2] and log-uniform magnitudes down to 1e−8, so every decade is visited.
            float x = n % 2 == 0 ? (float)(rng.NextDouble() * 2.4 - 1.2) : (float)((rng.Next(2) * 2 - 1) * Math.Pow(10, -8 * rng.NextDouble()));
            double best = map.Values.Min(v => Math.Abs((double)v - x));
            double got = Math.Abs((double)map.Decode(map.Encode(x)) - x);
            Assert.True(got <= best * (1 + 1e-6) + 1e-12, $"{map.Name}: {x} coded to {map.Decode(map.Encode(x))}, nearest is {best} away");
        }
        foreach (float v in map.Values) Assert.Equal(v, map.Decode(map.Encode(v)));
    }

    /// <summary>
    /// The round-trip error a dynamic map allows for |x| in decade e: half a fraction bin, 10^−e·0.9/2^(F+1) with
    /// F = f0 − e fraction bits; below the smallest decade 0 is a code, so at most |x|.
    /// </summary>
    private static double DynamicBound(double a, int maxExponent, int f0)
    {
        for (int e = 0; e <= maxExponent; e++)
            if (a >= Math.Pow(10, -(e + 1))) return Math.Pow(10, -e) * 0.9 / (1 << (f0 - e + 1));
        return a;
    }

    [Theory]
    [InlineData("signed8", 6, 6)]
    [InlineData("unsigned8", 6, 7)]
    [InlineData("signed4", 2, 2)]
    public void Dynamic_maps_round_trip_within_half_a_fraction_bin(string name, int maxExponent, int f0)
    {
        var map = Map(name);
        bool signed = map.Values[0] < 0;
        var rng = new Random(11);
        for (int n = 0; n < 20_000; n++)
        {
            double a = Math.Pow(10, -(maxExponent + 2) * rng.NextDouble());
            float x = (float)(signed && n % 2 == 1 ? -a : a);
            double error = Math.Abs((double)map.Decode(map.Encode(x)) - x);
            double bound = DynamicBound(a, maxExponent, f0);
            Assert.True(error <= bound * (1 + 1e-5) + 1e-12, $"{map.Name}: |x| = {a}: error {error} > {bound}");
        }
    }

    [Fact]
    public void Linear_map_round_trips_within_half_a_step_and_lifts_values_below_the_first_code()
    {
        var map = QuantizationMap.LinearWithoutZero(4);
        for (int n = 0; n <= 10_000; n++)
        {
            float x = n / 10_000f;
            double error = Math.Abs((double)map.Decode(map.Encode(x)) - x);
            if (x >= 1 / 16f) Assert.True(error <= 1 / 32.0 + 1e-7, $"{x}: error {error}");
            else Assert.Equal(1 / 16f, map.Decode(map.Encode(x)));
        }
    }

    private sealed class RoundedEquality(int digits) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Round(x, digits) == Math.Round(y, digits);
        public int GetHashCode(double obj) => Math.Round(obj, digits).GetHashCode();
    }
}

/// <summary>Block-wise and rank-1 storages: what they keep, how many bytes, and the round trip.</summary>
public class QuantizedStorageTests
{
    [Fact]
    public void Block_storage_keeps_one_absmax_per_block_and_restores_within_the_map_spacing()
    {
        const int n = 5000, block = 2048;
        var rng = new Random(3);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, -3 * rng.NextDouble()) * (1 + i / block));
        x[100] = 5f;   // a positive absmax in block 0: the map's +1 code stores it exactly

        var store = new BlockQuantizedStorage(n, block, Adam8bit.FirstMomentMap);
        Assert.Equal(n + 4L * 3, store.Bytes);
        x.CopyTo(store.Load(), 0);
        store.Save();
        for (int b = 0; b < 3; b++)
            Assert.Equal(x.Skip(b * block).Take(block).Max(Math.Abs), store.Scales[b]);
        var back = store.Load();
        Assert.Equal(5f, back[100]);
        for (int i = 0; i < n; i++)
        {
            double scale = store.Scales[i / block], a = Math.Abs(x[i]) / scale;
            // Signed 8-bit dynamic map: half a bin of decade e, 10^−e·0.9/2^(7−e); below 1e−7 at most |x|.
            double bound = a;
            for (int e = 0; e <= 6; e++) if (a >= Math.Pow(10, -(e + 1))) { bound = Math.Pow(10, -e) * 0.9 / (1 << (7 - e)); break; }
            Assert.True(Math.Abs(back[i] - x[i]) <= scale * bound * (1 + 1e-5) + 1e-12, $"element {i}: {x[i]} restored as {back[i]}");
        }
    }

    [Fact]
    public void Four_bit_codes_are_packed_two_per_byte_and_round_trip_exactly_on_code_values()
    {
        // Seven elements (an odd count): ⌈7/2⌉ = 4 bytes of codes + one fp32 scale.
        var store = new BlockQuantizedStorage(7, 128, AdamW4bit.SecondMomentMap);
        Assert.Equal(4 + 4, store.Bytes);
        int[] codes = [15, 0, 7, 8, 1, 14, 3];
        var w = store.Load();
        for (int i = 0; i < 7; i++) w[i] = (codes[i] + 1) / 16f * 2f;   // scale 2 (element 0 is the absmax)
        store.Save();
        var back = store.Load();
        for (int i = 0; i < 7; i++) Assert.Equal((codes[i] + 1) / 16f * 2f, back[i]);
    }

    [Fact]
    public void Rank1_storage_scales_each_element_by_the_smaller_of_its_row_and_column_maxima()
    {
        float[,] v =
        {
            { 4.0f, 0.5f, 0.0f, 1.0f },
            { 0.2f, 0.1f, 0.05f, 0.3f },
            { 0.0f, 0.0f, 0.0f, 0.0f },
        };
        var store = new Rank1QuantizedStorage(3, 4, AdamW4bit.SecondMomentMap);
        Assert.Equal(6 + 4 * (3 + 4), store.Bytes);
        var w = store.Load();
        for (int i = 0; i < 3; i++) for (int j = 0; j < 4; j++) w[i * 4 + j] = v[i, j];
        store.Save();
        var back = store.Load();
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 4; j++)
            {
                float r = Enumerable.Range(0, 4).Max(k => v[i, k]), c = Enumerable.Range(0, 3).Max(k => v[k, j]);
                float s = Math.Min(r, c);
                // Nearest of (k + 1)/16, k = 0 … 15, to v/s.
                double t = s > 0 ? v[i, j] / s : 0;
                int code = Enumerable.Range(0, 16).MinBy(k => Math.Abs((k + 1) / 16.0 - t));
                Assert.Equal((code + 1) / 16f * s, back[i * 4 + j]);
            }
        // The zero point is excluded: a zero in a non-zero row and column comes back as s/16, not 0; a zero row stays 0.
        Assert.Equal(Math.Min(4f, 0.05f) / 16f, back[2]);
        Assert.All(back.Skip(8), x => Assert.Equal(0f, x));
    }
}

/// <summary>Each anchor's first steps on small tensors against the papers' formulas, evaluated here in double.</summary>
public class AnchorStepTests
{
    private const double B1 = 0.9, B2 = 0.999, Eps = 1e-8;
    private const float Lr = 1e-2f;

    /// <summary>x restored after block-wise absmax quantisation on <paramref name="values"/> (nearest value, by search).</summary>
    private static double[] BlockRoundTrip(double[] x, int block, IReadOnlyList<float> values)
    {
        var y = new double[x.Length];
        for (int b = 0; b * block < x.Length; b++)
        {
            var idx = Enumerable.Range(b * block, Math.Min(block, x.Length - b * block)).ToArray();
            float absmax = idx.Max(i => Math.Abs((float)x[i]));
            foreach (int i in idx)
            {
                double t = absmax > 0 ? (float)x[i] / absmax : 0;
                float q = values.MinBy(v => Math.Abs(v - t));
                y[i] = q * absmax;
            }
        }
        return y;
    }

    /// <summary>One Adam step from (m, v) in double: returns the new p, m, v.</summary>
    private static (double[] P, double[] M, double[] V) Adam(double[] p, double[] g, double[] m, double[] v, int t)
    {
        int n = p.Length;
        var (pn, mn, vn) = (new double[n], new double[n], new double[n]);
        for (int i = 0; i < n; i++)
        {
            mn[i] = B1 * m[i] + (1 - B1) * g[i];
            vn[i] = B2 * v[i] + (1 - B2) * g[i] * g[i];
            pn[i] = p[i] - Lr * (mn[i] / (1 - Math.Pow(B1, t))) / (Math.Sqrt(vn[i] / (1 - Math.Pow(B2, t))) + Eps);
        }
        return (pn, mn, vn);
    }

    private static void AssertClose(double[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tolerance, $"{what}[{i}]: expected {expected[i]:R}, got {actual[i]:R}");
    }

    private static float[] F(double[] x) => x.Select(v => (float)v).ToArray();

    [Fact]
    public void Adam8bit_first_two_steps_follow_adam_with_the_moments_quantised_in_between()
    {
        // Six elements in blocks of 4 (the quantised path forced on with minQuantizedElements 0).
        double[] p0 = [0.5, -0.25, 0.125, 1.0, -0.75, 0.3];
        double[] g1 = [0.5, -0.03, 0.002, -1.2, 0.7, 0.0];
        double[] g2 = [0.4, 0.05, -0.001, -0.9, 0.2, 0.3];
        var opt = new Adam8bit([new TensorSpec("W", [6])], blockSize: 4, minQuantizedElements: 0);
        float[] p = F(p0);

        opt.Step(Lr, [p], [F(g1)]);
        var (p1, m1, v1) = Adam(p0, g1, new double[6], new double[6], 1);
        AssertClose(p1, p, 1e-6, "p after step 1");   // the update uses the new moments before they are quantised
        Assert.Equal(p0[5], p[5], 7);                  // g = 0 with zero state: no move

        opt.Step(Lr, [p], [F(g2)]);
        double[] mq = BlockRoundTrip(m1, 4, Adam8bit.FirstMomentMap.Values), vq = BlockRoundTrip(v1, 4, Adam8bit.SecondMomentMap.Values);
        var (p2, _, _) = Adam(p1, g2, mq, vq, 2);
        var (p2Fp32, _, _) = Adam(p1, g2, m1, v1, 2);
        AssertClose(p2, p, 2e-6, "p after step 2");
        // The test can tell quantised state from fp32 state: somewhere they differ by much more than its tolerance.
        Assert.True(p2.Zip(p2Fp32).Max(z => Math.Abs(z.First - z.Second)) > 1e-5);
    }

    [Fact]
    public void AdamW4bit_first_two_steps_use_block_DE_for_m_and_rank1_linear_for_v()
    {
        // A 2 × 3 matrix, m in blocks of 4 (so the blocks cross the row boundary), quantised path forced on.
        double[] p0 = [0.5, -0.25, 0.125, 1.0, -0.75, 0.3];
        double[] g1 = [0.5, -0.03, 0.02, -1.2, 0.7, 0.001];
        double[] g2 = [0.4, 0.05, -0.01, -0.9, 0.2, 0.3];
        var opt = new AdamW4bit([new TensorSpec("W", [2, 3])], blockSize: 4, maxFullPrecisionElements: 0);
        float[] p = F(p0);

        opt.Step(Lr, [p], [F(g1)]);
        var (p1, m1, v1) = Adam(p0, g1, new double[6], new double[6], 1);
        AssertClose(p1, p, 1e-6, "p after step 1");

        opt.Step(Lr, [p], [F(g2)]);
        double[] mq = BlockRoundTrip(m1, 4, AdamW4bit.FirstMomentMap.Values);
        // Rank-1 normalisation of v: scale min(row max, column max), code nearest (k + 1)/16.
        var vq = new double[6];
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
            {
                float r = (float)Math.Max(Math.Max(v1[3 * i], v1[3 * i + 1]), v1[3 * i + 2]);
                float c = (float)Math.Max(v1[j], v1[3 + j]);
                float s = Math.Min(r, c);
                double t = (float)v1[3 * i + j] / s;
                int k = Enumerable.Range(0, 16).MinBy(k => Math.Abs((k + 1) / 16.0 - t));
                vq[3 * i + j] = (k + 1) / 16f * s;
            }
        var (p2, _, _) = Adam(p1, g2, mq, vq, 2);
        var (p2Fp32, _, _) = Adam(p1, g2, m1, v1, 2);
        AssertClose(p2, p, 2e-6, "p after step 2");
        Assert.True(p2.Zip(p2Fp32).Max(z => Math.Abs(z.First - z.Second)) > 1e-5);
    }

    [Fact]
    public void Adafactor_first_step_is_G_over_the_factored_root_with_update_clipping()
    {
        // g = [[1, 0], [0, 0.1]]: G² is far from rank 1, so RMS(U) > 1 and the update is clipped; and a vector.
        double[] p0 = [0.5, -0.5, 0.25, 1.0], g = [1.0, 0.0, 0.0, 0.1];
        double[] q0 = [0.1, 0.2, 0.3], h = [0.3, -0.02, 0.0];
        const double eps1 = 1e-30;
        var opt = new Adafactor([new TensorSpec("W", [2, 2]), new TensorSpec("b", [3])]);
        float[] p = F(p0), q = F(q0);
        opt.Step(Lr, [p, q], [F(g), F(h)]);

        // β̂2_1 = 1 − 1^−0.8 = 0: R = row sums of G² + ε1, C = column sums, V̂ = R Cᵀ / ΣR.
        Assert.Equal(0.0, opt.Beta2At(1));
        double[] r = [g[0] * g[0] + g[1] * g[1] + 2 * eps1, g[2] * g[2] + g[3] * g[3] + 2 * eps1];
        double[] c = [g[0] * g[0] + g[2] * g[2] + 2 * eps1, g[1] * g[1] + g[3] * g[3] + 2 * eps1];
        var u = new double[4];
        for (int i = 0; i < 2; i++) for (int j = 0; j < 2; j++) u[2 * i + j] = g[2 * i + j] / Math.Sqrt(r[i] * c[j] / (r[0] + r[1]));
        double rms = Math.Sqrt(u.Sum(x => x * x) / 4);
        Assert.True(rms > 2, $"RMS(U) = {rms}: the case should exercise the clipping");
        AssertClose(p0.Zip(u, (x, ui) => x - Lr * ui / Math.Max(1, rms)).ToArray(), p, 1e-6, "matrix");

        // The vector: V = h² + ε1, U = h/√V (≈ sign h, 0 for h = 0), RMS(U) < 1 so no clipping.
        var uh = h.Select(x => x / Math.Sqrt(x * x + eps1)).ToArray();
        double rmsH = Math.Sqrt(uh.Sum(x => x * x) / 3);
        Assert.True(rmsH < 1);
        AssertClose(q0.Zip(uh, (x, ui) => x - Lr * ui).ToArray(), q, 1e-6, "vector");
    }

    /// <summary>
    /// The vector ablations, from their formulas: <see cref="AdafactorVectors.Adam"/> steps a vector as Adam with β1 = 0
    /// (v ← 0.999·v + 0.001·g², p − lr·g/(√(v/(1 − 0.999^t)) + 1e-8)); <see cref="AdafactorVectors.NoClipping"/> as Adafactor
    /// without the clip.
    /// </summary>
    [Fact]
    public void Adafactor_vector_ablations_step_as_their_formulas()
    {
        double[] q0 = [0.1, 0.2, 0.3], h1 = [0.3, -0.02, 0.0], h2 = [-0.1, 0.05, 0.2];
        var adam = new Adafactor([new TensorSpec("b", [3])], vectors: AdafactorVectors.Adam);
        var noClip = new Adafactor([new TensorSpec("b", [3])], vectors: AdafactorVectors.NoClipping);
        float[] qa = F(q0), qn = F(q0);
        double[] v = new double[3], expected = (double[])q0.Clone(), vn = new double[3], expectedN = (double[])q0.Clone();
        int t = 0;
        foreach (var h in new[] { h1, h2 })
        {
            t++;
            adam.Step(Lr, [qa], [F(h)]);
            noClip.Step(Lr, [qn], [F(h)]);
            double beta = 1 - Math.Pow(t, -0.8);
            for (int j = 0; j < 3; j++)
            {
                double g = (float)h[j];
                v[j] = 0.999 * v[j] + 0.001 * g * g;
                expected[j] -= Lr * g / (Math.Sqrt(v[j] / (1 - Math.Pow(0.999, t))) + 1e-8);
                vn[j] = beta * vn[j] + (1 - beta) * (g * g + 1e-30);
                expectedN[j] -= Lr * g / Math.Sqrt(vn[j]);
            }
            AssertClose(expected, qa, 1e-6, $"Adam vectors, step {t}");
            AssertClose(expectedN, qn, 1e-6, $"no-clipping vectors, step {t}");
        }
    }

    [Fact]
    public void Adafactor_factored_second_moment_equals_the_outer_product_of_the_row_and_column_EMAs()
    {
        const int rows = 3, cols = 4;
        var opt = new Adafactor([new TensorSpec("W", [rows, cols])]);
        var p = new float[rows * cols];
        var rng = new Random(5);
        double[] r = new double[rows], c = new double[cols];
        for (int t = 1; t <= 4; t++)
        {
            var g = Enumerable.Range(0, rows * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            opt.Step(1e-3f, [p], [g]);
            double beta = 1 - Math.Pow(t, -0.8);
            for (int i = 0; i < rows; i++) r[i] = beta * r[i] + (1 - beta) * Enumerable.Range(0, cols).Sum(j => (double)g[i * cols + j] * g[i * cols + j] + 1e-30);
            for (int j = 0; j < cols; j++) c[j] = beta * c[j] + (1 - beta) * Enumerable.Range(0, rows).Sum(i => (double)g[i * cols + j] * g[i * cols + j] + 1e-30);
            var est = opt.SecondMomentEstimate(0);
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++)
                {
                    double expected = r[i] * c[j] / r.Sum();
                    Assert.True(Math.Abs(est[i * cols + j] - expected) <= 1e-5 * expected, $"t {t} ({i},{j}): {est[i * cols + j]} vs {expected}");
                }
        }

        // For a rank-1 G² (g_ij = a_i·b_j) the factored estimate is exact at step 1: V̂ = G².
        var exact = new Adafactor([new TensorSpec("W", [rows, cols])]);
        double[] a = [0.5, -2, 1.5], b = [1, 0.25, -3, 0.1];
        var g1 = new float[rows * cols];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) g1[i * cols + j] = (float)(a[i] * b[j]);
        exact.Step(1e-3f, [new float[rows * cols]], [g1]);
        var v = exact.SecondMomentEstimate(0);
        for (int k = 0; k < rows * cols; k++) Assert.True(Math.Abs(v[k] - (double)g1[k] * g1[k]) <= 1e-5 * g1[k] * g1[k], $"element {k}");
    }

    /// <summary>A one-layer model small enough to check by hand: d_model 4, 2 heads of 2, feed-forward 6, vocabulary 5, context 3.</summary>
    private static readonly ModelConfig Small = new(Vocab: 5, Context: 3, DModel: 4, Heads: 2, FeedForward: 6, Layers: 1);

    /// <summary>
    /// The block of element (i, j) of a Small tensor, by the paper's rule as read for [in, out] weights: Wqkv by (q|k|v, head),
    /// Wo/W1/W2/Head by output column, Embed/Pos by row, vectors whole.
    /// </summary>
    private static (int, int) BlockOf(TensorSpec t, int i, int j)
    {
        if (t.Shape.Length == 1) return (0, 0);
        if (t.Name is "Embed" or "Pos") return (i, 0);
        if (t.Name.EndsWith("Wqkv", StringComparison.Ordinal)) return (j / Small.DModel, j % Small.DModel / Small.HeadDim);
        return (j, 0);
    }

    [Fact]
    public void AdamMini_partitions_by_head_output_neuron_and_token_and_its_first_step_divides_by_the_block_rms()
    {
        var specs = Small.Specs();
        var opt = new AdamMini(specs, Small.Heads);
        var expectedBlocks = new Dictionary<string, int>
        {
            ["Embed"] = 5, ["Pos"] = 3, ["L0Wqkv"] = 3 * 2, ["L0Wo"] = 4, ["L0W1"] = 6, ["L0W2"] = 4, ["Head"] = 5,
        };
        for (int k = 0; k < specs.Count; k++)
            Assert.Equal(expectedBlocks.GetValueOrDefault(specs[k].Name, 1), opt.Partitions[k].BlockCount);

        var rng = new Random(9);
        var p0 = specs.Select(s => Enumerable.Range(0, ModelConfig.Length(s)).Select(_ => rng.NextDouble() - 0.5).ToArray()).ToArray();
        var g = specs.Select(s => Enumerable.Range(0, ModelConfig.Length(s)).Select(_ => (rng.NextDouble() - 0.5) * Math.Pow(10, -2 * rng.NextDouble())).ToArray()).ToArray();
        var p = p0.Select(F).ToArray();
        opt.Step(Lr, p, g.Select(F).ToArray());

        // Step 1: m̂ = g and v̂_b = mean over the block of g², so p ← p − lr·g/(√mean_b(g²) + ε).
        for (int k = 0; k < specs.Count; k++)
        {
            var s = specs[k];
            int rows = s.Shape.Length == 2 ? s.Shape[0] : 1, cols = s.Shape[^1];
            var sums = new Dictionary<(int, int), (double Sum, int Count)>();
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++)
                {
                    var key = BlockOf(s, i, j);
                    var (sum, count) = sums.GetValueOrDefault(key);
                    double gij = (float)g[k][i * cols + j];
                    sums[key] = (sum + gij * gij, count + 1);
                }
            Assert.Equal(opt.Partitions[k].BlockCount, sums.Count);
            var expected = new double[rows * cols];
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++)
                {
                    var (sum, count) = sums[BlockOf(s, i, j)];
                    expected[i * cols + j] = p0[k][i * cols + j] - Lr * (float)g[k][i * cols + j] / (Math.Sqrt(sum / count) + Eps);
                }
            AssertClose(expected, p[k], 2e-6, s.Name);
        }
    }
}

/// <summary>State bytes of every anchor for TinyLm's tensors, from each paper's storage rule (and the totals worked out by hand).</summary>
public class AnchorStateBytesTests
{
    private static readonly IReadOnlyList<TensorSpec> Specs = TinyLmModel.Config.Specs();

    private static long Ceil(long a, long b) => (a + b - 1) / b;

    [Fact]
    public void Adam8bit_keeps_two_8_bit_codes_and_a_scale_per_2048_or_32_bit_state_below_4096_elements()
    {
        long expected = Specs.Sum(s =>
        {
            long n = ModelConfig.Length(s);
            return n >= 4096 ? 2 * (n + 4 * Ceil(n, 2048)) : 8 * n;
        });
        Assert.Equal(expected, new Adam8bit(Specs).StateBytes);
        Assert.Equal(232_648, expected);   // 2·(110,720 + 4·56) quantised + 8·1,345 fp32
    }

    [Fact]
    public void AdamW4bit_keeps_packed_4_bit_codes_block_scales_for_m_and_row_and_column_scales_for_v()
    {
        long expected = Specs.Sum(s =>
        {
            long n = ModelConfig.Length(s);
            if (n <= 4096) return 8 * n;
            long m = Ceil(n, 2) + 4 * Ceil(n, 128);
            long v = s.Shape.Length == 2 ? Ceil(n, 2) + 4 * (s.Shape[0] + s.Shape[1]) : Ceil(n, 2) + 4 * Ceil(n, 128);
            return m + v;
        });
        Assert.Equal(expected, new AdamW4bit(Specs).StateBytes);
        Assert.Equal(218_776, expected);   // 109,712 quantised + 8·13,633 fp32 (Pos and Wo have exactly 4096 elements)
    }

    [Fact]
    public void Adafactor_keeps_rows_plus_columns_per_matrix_and_a_full_v_per_vector()
    {
        long expected = Specs.Sum(s => s.Shape.Length == 2 ? 4L * (s.Shape[0] + s.Shape[1]) : 4L * ModelConfig.Length(s));
        Assert.Equal(expected, new Adafactor(Specs).StateBytes);
        Assert.Equal(4 * (2434 + 1345), expected);
    }

    [Fact]
    public void AdamMini_keeps_a_full_m_and_one_float_per_block()
    {
        var c = TinyLmModel.Config;
        int perLayer = 3 * c.Heads + c.DModel + c.FeedForward + c.DModel + 6;   // Wqkv heads, Wo, W1, W2 columns, six vectors
        int blocks = c.Vocab + c.Context + c.Layers * perLayer + c.Vocab + 3;     // Embed rows, Pos rows, layers, Head columns, LnfG/B, HeadB
        Assert.Equal(1001, blocks);
        long expected = 4 * c.ParameterCount + 4L * blocks;
        Assert.Equal(expected, new AdamMini(Specs, c.Heads).StateBytes);
        Assert.Equal(452_264, expected);
    }
}

/// <summary>The anchors in the catalogue and the sweep, and a short training run of each.</summary>
[Collection(TinyLmSerial.Name)]
public class AnchorTrainingTests(ITestOutputHelper output)
{
    private static readonly Lazy<Corpus> Data = new(() => Corpus.Load());

    public static TheoryData<string> Anchors => new(OptimizerCatalog.AnchorNames);

    [Theory]
    [MemberData(nameof(Anchors))]
    public void Anchor_trains_30_steps_with_falling_finite_loss(string name)
    {
        var opt = OptimizerCatalog.Create(name, TinyLmModel.Config);
        Assert.Equal(name, opt.Name);
        Assert.StartsWith("anchor: ", opt.Implementation, StringComparison.Ordinal);
        var o = new TrainOptions
        {
            Steps = 30, Batch = 8, LearningRate = OptimizerCatalog.SweepLearningRate(name), WarmupSteps = 3, EvalEvery = 0,
            FinalEvalWindows = 32, TrainTokens = 50_000, Seed = 3,
        };
        var r = Trainer.Train(TinyLmModel.Config, Data.Value, opt, o);
        double first = r.TrainLosses.Take(5).Average(), last = r.TrainLosses.TakeLast(5).Average();
        output.WriteLine($"{name}: first {first:F4} last {last:F4} val {r.FinalValidationLoss:F4}");
        Assert.All(r.TrainLosses, l => Assert.True(float.IsFinite(l)));
        Assert.True(r.TrainLosses[0] > 4.0, $"untrained loss {r.TrainLosses[0]}");
        // From ln 65 ≈ 4.17 the loss falls by 0.7 nats in 30 steps (to about the unigram cross-entropy, 3.3) and is still falling.
        float start = r.TrainLosses[0];
        Assert.True(last < start - 0.7 && last < first, $"train loss went from {start:F3} (first five {first:F3}) to {last:F3}");
        Assert.True(double.IsFinite(r.FinalValidationLoss) && r.FinalValidationLoss < start - 0.7, $"validation loss {r.FinalValidationLoss:F3} from {start:F3}");
    }

    [Fact]
    public void Catalogue_and_sweep_know_the_anchors()
    {
        foreach (var name in OptimizerCatalog.AnchorNames)
        {
            Assert.Contains(name, OptimizerCatalog.Names);
            Assert.NotNull(OptimizerCatalog.CreateBaseline(name, TinyLmModel.Config));
            Assert.Contains(Sweep.Configurations(), c => c.Name == name && c.Settings is null);
        }
        Assert.IsType<Adam8bit>(OptimizerCatalog.Create("Adam8bit", TinyLmModel.Config));
        Assert.IsType<AdamW4bit>(OptimizerCatalog.Create("AdamW4bit", TinyLmModel.Config));
        Assert.IsType<Adafactor>(OptimizerCatalog.Create("Adafactor", TinyLmModel.Config));
        Assert.IsType<AdamMini>(OptimizerCatalog.Create("AdamMini", TinyLmModel.Config));
        Assert.Null(OptimizerCatalog.CreateBaseline("C32", TinyLmModel.Config));

        // A two-configuration sweep: the anchor's row is reported against AdamW and keeps its own family.
        string dir = Directory.CreateTempSubdirectory("tinylm-anchor-sweep").FullName;
        try
        {
            var o = new TrainOptions { Steps = 2, Batch = 2, WarmupSteps = 1, EvalEvery = 0, EvalWindows = 4, FinalEvalWindows = 4, TrainTokens = 20_000, Seed = 5 };
            Assert.Equal(0, Sweep.Run(TinyLmModel.Config, Data.Value, o, dir, learningRates: [1e-3f], only: ["AdamW", "Adafactor"]));
            var data = SweepData.Load(dir);
            var anchor = Assert.Single(data.Runs, r => r.Name == "Adafactor");
            Assert.Equal("Adafactor", anchor.Family);
            Assert.Equal(new Adafactor(TinyLmModel.Config.Specs()).StateBytes, anchor.StateBytes);
            string md = File.ReadAllText(Path.Combine(dir, "results.md"));
            Assert.Contains("AdamW: final validation loss", md, StringComparison.Ordinal);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
