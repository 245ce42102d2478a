using Collins.Hashing;
using Collins.Kernels;

namespace Collins.Tests;

/// <summary>The vectorised Universal kernels against the plain serial loops over HashDerivation's hashes, bit for bit.</summary>
[Trait("Category", "Kernels")]
public class UniversalCpuTests
{
    public static TheoryData<int, int, string> Shapes()
    {
        var data = new TheoryData<int, int, string>();
        foreach (var (d, k) in new[] { (0, 1), (1, 1), (15, 3), (16, 2), (17, 5), (40, 40), (1000, 32), (4099, 1024), (100_003, 3126), (65_536, 65_536), (200_000, 1 << 17), (300_001, 262_147) })
            foreach (var name in new[] { "W", "embedding" })
                data.Add(d, k, name);
        return data;
    }

    private static float[] Values(int n, int seed)
    {
        var r = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(r.NextDouble() - 0.5) * (i % 11 == 0 ? 100f : 1f);
        return x;
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void AccumulateBuckets_matches_the_serial_scatter_for_any_split(int d, int k, string name)
    {
        HashDerivation.Universal(1234, name, out uint a, out uint b, out uint sa, out uint sb);
        var g = Values(d, d + k);
        var expectM = new float[k]; var expectV = new float[k];
        for (int i = 0; i < d; i++)
        {
            int t = HashDerivation.UniversalBucket(a, b, k, i);
            expectM[t] += HashDerivation.UniversalSign(sa, sb, i) * g[i];
            expectV[t] += g[i] * g[i];
        }
        foreach (bool vectorize in new[] { true, false })
        foreach (int tiles in new[] { 1, 2, 3, 7 })
        {
            var m = Enumerable.Repeat(float.NaN, k).ToArray();   // stale workspace: every range must be zeroed first
            var v = Enumerable.Repeat(float.NaN, k).ToArray();
            var v0 = Enumerable.Repeat(float.NaN, k).ToArray();
            for (int tile = 0; tile < tiles; tile++)
            {
                int b0 = (int)((long)k * tile / tiles), b1 = (int)((long)k * (tile + 1) / tiles);
                Assert.True(UniversalCpu.AccumulateBuckets(g, m, v, b0, b1, k, a, b, sa, sb, vectorize));
                Assert.True(UniversalCpu.AccumulateBuckets(g, default, v0, b0, b1, k, a, b, sa, sb, vectorize));   // β1 = 0: no first moment
            }
            Assert.Equal(Bits(expectM), Bits(m));
            Assert.Equal(Bits(expectV), Bits(v));
            Assert.Equal(Bits(expectV), Bits(v0));
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ApplyElements_matches_the_serial_gather(int d, int k, string name)
    {
        HashDerivation.Universal(99, name, out uint a, out uint b, out uint sa, out uint sb);
        var q = Values(k, 7);
        var g = Values(d, 8);
        var p0 = Values(d, 9);
        const float decay = 0.999f;
        foreach (bool vectorize in new[] { true, false })
        foreach (bool withG in new[] { false, true })
        {
            var expect = (float[])p0.Clone();
            for (int i = 0; i < d; i++)
            {
                float f = q[HashDerivation.UniversalBucket(a, b, k, i)];
                expect[i] = expect[i] * decay - (withG ? g[i] * f : HashDerivation.UniversalSign(sa, sb, i) * f);
            }
            var p = (float[])p0.Clone();
            // Ragged tiles, each starting anywhere: the vector hash must start from the tile's own first index.
            for (int i0 = 0; i0 < d; i0 += 1237)
                UniversalCpu.ApplyElements(p, withG ? g : default, q, i0, Math.Min(d, i0 + 1237), decay, k, a, b, sa, sb, vectorize);
            Assert.Equal(Bits(expect), Bits(p));
        }
    }

    [Fact]
    public void Hash_edge_values_match_near_the_prime_and_at_bucket_multiples()
    {
        // Constants that make (A·i + B) mod p wrap past p − 1 and 0, and hit the multiples of k whose double quotient
        // x·(1/k) floors one too low (1073790975 = 13107·81925, 2147270656 = 16384·131059; found by search).
        const uint p = 2147483647u;
        foreach (var (a, b, k) in new[] { (p - 1, p - 1, 7), (1u, 0u, 1 << 20), (1u, p - 20u, 3), (2u, p - 1, 1_000_003),
                                          (1u, 1073790975u - 37u, 81925), (1u, 2147270656u - 100u, 131059), (81925u, 0u, 81925) })
        {
            int d = 4096;
            var g = Values(d, 3);
            var m = new float[k]; var v = new float[k];
            var expectM = new float[k]; var expectV = new float[k];
            for (int i = 0; i < d; i++)
            {
                int t = HashDerivation.UniversalBucket(a, b, k, i);
                expectM[t] += HashDerivation.UniversalSign(a, b, i) * g[i];
                expectV[t] += g[i] * g[i];
            }
            Assert.True(UniversalCpu.AccumulateBuckets(g, m, v, 0, k, k, a, b, a, b));
            Assert.Equal(Bits(expectM), Bits(m));
            Assert.Equal(Bits(expectV), Bits(v));
        }
    }

    [Fact]
    public void A_non_finite_gradient_is_reported_by_the_tile_whose_buckets_it_reaches()
    {
        HashDerivation.Universal(5, "W", out uint a, out uint b, out uint sa, out uint sb);
        int d = 5000, k = 157;
        var g = Values(d, 1);
        g[1234] = float.PositiveInfinity;
        int hit = HashDerivation.UniversalBucket(a, b, k, 1234);
        var m = new float[k]; var v = new float[k];
        for (int tile = 0; tile < 4; tile++)
        {
            int b0 = k * tile / 4, b1 = k * (tile + 1) / 4;
            bool finite = UniversalCpu.AccumulateBuckets(g, m, v, b0, b1, k, a, b, sa, sb);
            Assert.Equal(hit < b0 || hit >= b1, finite);
        }
    }

    [Fact]
    public void Bad_arguments_throw_before_anything_is_written()
    {
        var v = new float[10];
        Assert.Throws<ArgumentException>(() => UniversalCpu.AccumulateBuckets(new float[20], default, v, 0, 11, 10, 3, 4, 5, 6));
        Assert.Throws<ArgumentException>(() => UniversalCpu.AccumulateBuckets(new float[20], default, v, 0, 10, 10, 0, 4, 5, 6));
        Assert.Throws<ArgumentException>(() => UniversalCpu.ApplyElements(new float[20], default, new float[9], 0, 20, 1f, 10, 3, 4, 5, 6));
        Assert.Throws<ArgumentException>(() => UniversalCpu.ApplyElements(new float[20], new float[19], v, 0, 20, 1f, 10, 3, 4, 5, 6));
    }

    private static int[] Bits(float[] x) => x.Select(BitConverter.SingleToInt32Bits).ToArray();
}
