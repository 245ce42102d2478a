namespace Collins.Tests;

internal static class ReferenceTestHelpers
{
    /// <summary>|actual − expected| ≤ rel·max(|expected|, floor) for every element.</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, double rel, double floor, string what)
        => AssertClose<float>(expected, actual, rel, floor, what);

    /// <summary>As above, against expected values held in double.</summary>
    public static void AssertClose(ReadOnlySpan<double> expected, ReadOnlySpan<float> actual, double rel, double floor, string what)
        => AssertClose<double>(expected, actual, rel, floor, what);

    private static void AssertClose<T>(ReadOnlySpan<T> expected, ReadOnlySpan<float> actual, double rel, double floor, string what)
        where T : struct, System.Numerics.INumberBase<T>
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            double e = double.CreateTruncating(expected[i]), a = actual[i];
            double tol = rel * Math.Max(Math.Abs(e), floor);
            if (!(Math.Abs(a - e) <= tol))
                Assert.Fail($"{what}[{i}]: expected {e:R}, got {a:R} (|diff| {Math.Abs(a - e):E3} > tol {tol:E3}).");
        }
    }

    /// <summary>Normally distributed floats (Box–Muller) from a seeded generator.</summary>
    public static float[] Normal(Random rng, int n, double scale = 1.0)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(scale * Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return x;
    }

    public static float[] Uniform(Random rng, int n, double lo = -1, double hi = 1)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        return x;
    }

    public static float[][] Clone(float[][] a) => a.Select(x => (float[])x.Clone()).ToArray();
}
