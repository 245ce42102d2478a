namespace Collins.Tests.Generated;

/// <summary>Shared helpers for the tests of generated optimizers: seeded data and tolerant comparison.</summary>
internal static class GeneratedTestSupport
{
    /// <summary>Uniform floats in [-scale, scale) from a fixed seed.</summary>
    public static float[] RandomArray(int length, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var a = new float[length];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * scale;
        return a;
    }

    /// <summary>Per-tensor random parameters.</summary>
    public static float[][] Parameters(IReadOnlyList<TensorSpec> specs, int seed)
        => specs.Select((s, i) => RandomArray(s.Shape.Aggregate(1, (a, b) => a * b), seed * 1000 + i)).ToArray();

    /// <summary>Per-tensor random gradients of step <paramref name="step"/>; a different scale per tensor and step.</summary>
    public static float[][] Gradients(IReadOnlyList<TensorSpec> specs, int seed, int step)
        => specs.Select((s, i) => RandomArray(s.Shape.Aggregate(1, (a, b) => a * b), seed * 7919 + step * 104729 + i, 0.1f + 0.3f * ((step + i) % 4))).ToArray();

    public static float[][] Clone(float[][] x) => x.Select(a => (float[])a.Clone()).ToArray();

    /// <summary>Asserts |actual − expected| ≤ 1e-5 · max(|expected|, 1) element-wise, naming the first offender.</summary>
    public static void AssertClose(IReadOnlyList<TensorSpec> specs, float[][] expected, float[][] actual, double relative = 1e-5, string context = "")
    {
        for (int t = 0; t < expected.Length; t++)
        {
            Assert.Equal(expected[t].Length, actual[t].Length);
            for (int i = 0; i < expected[t].Length; i++)
            {
                double e = expected[t][i], a = actual[t][i];
                double tol = relative * Math.Max(Math.Abs(e), 1.0);
                if (!(Math.Abs(a - e) <= tol))
                    Assert.Fail($"{context} tensor '{specs[t].Name}'[{i}]: expected {e:R}, got {a:R} (|diff| {Math.Abs(a - e):E3} > {tol:E3})");
            }
        }
    }

    public static void AssertBitIdentical(float[][] expected, float[][] actual)
    {
        for (int t = 0; t < expected.Length; t++)
            for (int i = 0; i < expected[t].Length; i++)
                if (BitConverter.SingleToInt32Bits(expected[t][i]) != BitConverter.SingleToInt32Bits(actual[t][i]))
                    Assert.Fail($"tensor {t}[{i}]: {expected[t][i]:R} vs {actual[t][i]:R} are not bit-identical");
    }
}
