namespace Collins.Tests;

public class OccupancyAndHashTests
{
    private static TensorPlan Plan(int d, int ratio, SketchLayout layout = SketchLayout.Rotation, long seed = 0, string name = "w")
        => new(new TensorSpec(name, new[] { d }, Sketching: TensorSketching.Sketched), new OptimizerSettings { Ratio = ratio, Layout = layout, Seed = seed });

    [Theory]
    [InlineData(64, 4)]
    [InlineData(4096, 32)]
    [InlineData(5, 3)]
    [InlineData(100, 7)]
    [InlineData(33, 32)]
    [InlineData(1000, 3)]
    [InlineData(4097, 40)]
    [InlineData(7, 1000)]
    public void Rotation_buckets_hold_one_entry_per_row_except_the_ragged_tail(int d, int ratio)
    {
        var plan = Plan(d, ratio);
        int k = plan.Buckets, rows = plan.Rows;
        Assert.Equal((d + ratio - 1) / ratio, k);
        Assert.Equal((d + k - 1) / k, rows);
        Assert.True(rows <= ratio);
        if (d % ratio == 0) Assert.Equal(ratio, rows);

        // Buckets covered by the (possibly partial) last row: column c < lastLength goes to (c + ρ_last) mod k.
        int lastLength = d - (rows - 1) * k;
        var inLastRow = new bool[k];
        for (int c = 0; c < lastLength; c++) inLastRow[(c + plan.Rotations[rows - 1]) % k] = true;

        var occ = plan.Occupancy();
        Assert.Equal(d, occ.Sum());
        for (int b = 0; b < k; b++)
            Assert.Equal(inLastRow[b] ? rows : rows - 1, occ[b]);
        if (lastLength == k) Assert.All(occ, o => Assert.Equal(rows, o));

        // Within a row no two entries collide.
        for (int r = 0; r < rows; r++)
        {
            var seen = new HashSet<int>();
            for (int i = r * k; i < Math.Min(d, (r + 1) * k); i++) Assert.True(seen.Add(plan.Bucket(i)), $"row {r} collides at entry {i}");
        }
    }

    [Fact]
    public void Different_names_and_seeds_give_different_constants()
    {
        var a = Plan(10000, 16, SketchLayout.Universal, seed: 0, name: "W1");
        var b = Plan(10000, 16, SketchLayout.Universal, seed: 0, name: "W2");
        var c = Plan(10000, 16, SketchLayout.Universal, seed: 1, name: "W1");
        var a2 = Plan(10000, 16, SketchLayout.Universal, seed: 0, name: "W1");
        (uint, uint, uint, uint) K(TensorPlan p) => (p.UniversalA, p.UniversalB, p.UniversalSignA, p.UniversalSignB);
        Assert.Equal(K(a), K(a2));
        Assert.NotEqual(K(a), K(b));
        Assert.NotEqual(K(a), K(c));
        Assert.NotEqual(K(b), K(c));
        Assert.InRange(a.UniversalA, 1u, 2147483646u);
        Assert.InRange(a.UniversalSignA, 1u, 2147483646u);

        var ra = Plan(10000, 16, SketchLayout.Rotation, seed: 0, name: "W1");
        var rb = Plan(10000, 16, SketchLayout.Rotation, seed: 0, name: "W2");
        var rc = Plan(10000, 16, SketchLayout.Rotation, seed: 1, name: "W1");
        Assert.NotEqual(ra.Rotations.ToArray(), rb.Rotations.ToArray());
        Assert.NotEqual(ra.Rotations.ToArray(), rc.Rotations.ToArray());
        Assert.NotEqual(ra.Signs.ToArray(), rc.Signs.ToArray());
        Assert.All(ra.Rotations.ToArray(), r => Assert.InRange(r, 0, ra.Buckets - 1));
        Assert.All(ra.Signs.ToArray(), s => Assert.True(s == 1 || s == -1));
    }

    [Fact]
    public void Universal_sign_hash_is_balanced_and_buckets_are_spread()
    {
        const int d = 20000;
        foreach (long seed in new long[] { 0, 1, 2, 3 })
        {
            var plan = Plan(d, 32, SketchLayout.Universal, seed);
            int plus = 0;
            for (int i = 0; i < d; i++) plus += plan.Sign(i) == 1 ? 1 : 0;
            // Binomial(20000, 1/2) has standard deviation ≈ 71; allow ±5%  (≈ 14 σ).
            Assert.InRange(plus, d * 45 / 100, d * 55 / 100);
            var occ = plan.Occupancy();
            Assert.Equal(plan.Buckets, occ.Length);
            // Mean occupancy is 32; no bucket should be empty or hold more than four times the mean.
            Assert.All(occ, o => Assert.InRange(o, 1, 128));
        }
    }

    [Fact]
    public void Rotation_signs_are_balanced_over_many_rows()
    {
        var plan = Plan(100000, 1000);
        int plus = plan.Signs.ToArray().Count(s => s == 1);
        Assert.Equal(1000, plan.Rows);
        Assert.InRange(plus, 400, 600);
    }
}
