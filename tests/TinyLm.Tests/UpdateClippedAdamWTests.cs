using Collins;

namespace TinyLm.Tests;

/// <summary>
/// AdamWUpdateClip: dense AdamW with Adafactor's update clipping per tensor, against the formula evaluated here in double
/// (m, v, m̂, v̂, u = m̂/(√v̂ + ε), RMS(u), u/max(1, RMS(u)/d), p ← p·(1 − lr·wd) − lr·u), on two tiny tensors over three steps.
/// </summary>
public class UpdateClippedAdamWTests
{
    private static readonly TensorSpec[] Specs = [new("W", new[] { 2, 3 }), new("B", 4)];
    private const float Lr = 1e-2f;

    private static float[][] Initial() =>
    [
        [0.5f, -0.25f, 0.125f, 1f, -1f, 0.75f],
        [0.1f, 0.2f, -0.3f, 0.4f],
    ];

    /// <summary>Mixed signs and magnitudes that change between steps: |m̂| stays below √v̂, so RMS(u) &lt; 1 on every step.</summary>
    private static float[][][] Mixed() =>
    [
        [[0.3f, -0.2f, 0.05f, 0.7f, -0.4f, 0.1f], [0.2f, -0.6f, 0.3f, 0.01f]],
        [[-0.1f, 0.4f, 0.02f, -0.5f, 0.3f, 0.2f], [-0.3f, 0.5f, 0.1f, 0.02f]],
        [[0.2f, -0.3f, -0.06f, 0.1f, 0.6f, -0.2f], [0.1f, -0.2f, -0.4f, 0.03f]],
    ];

    /// <summary>
    /// W: two tiny steps, then a large one with the same signs, so with β1 = 0 (m̂ = g) u ≈ g₃/√(g₃²/3) ≈ √3 there: RMS(u) &gt; 1.
    /// B: the same magnitude every step, so |u| = |g|/(|g| + ε·…) &lt; 1: never clipped, in the same step as W.
    /// </summary>
    private static float[][][] Growing() =>
    [
        [[0.001f, -0.002f, 0.001f, 0.003f, -0.001f, 0.002f], [0.5f, -0.5f, 0.5f, -0.5f]],
        [[0.002f, -0.001f, 0.003f, 0.001f, -0.002f, 0.001f], [0.5f, -0.5f, 0.5f, -0.5f]],
        [[1.0f, -2.0f, 1.5f, 3.0f, -1.0f, 2.0f], [0.5f, -0.5f, 0.5f, -0.5f]],
    ];

    /// <summary>The formula, in double, step by step: the parameters after each step and each tensor's RMS(u) before clipping.</summary>
    private static (double[][][] Parameters, double[][] Rms) Formula(float[][][] gradients, double beta1, double beta2, double eps, double wd, double d, bool clip = true)
    {
        var p = Initial().Select(t => t.Select(x => (double)x).ToArray()).ToArray();
        var m = p.Select(t => new double[t.Length]).ToArray();
        var v = p.Select(t => new double[t.Length]).ToArray();
        var after = new List<double[][]>();
        var rms = new List<double[]>();
        for (int step = 1; step <= gradients.Length; step++)
        {
            var stepRms = new double[p.Length];
            for (int t = 0; t < p.Length; t++)
            {
                var u = new double[p[t].Length];
                for (int j = 0; j < u.Length; j++)
                {
                    double g = gradients[step - 1][t][j];
                    m[t][j] = beta1 * m[t][j] + (1 - beta1) * g;
                    v[t][j] = beta2 * v[t][j] + (1 - beta2) * g * g;
                    double mHat = m[t][j] / (1 - Math.Pow(beta1, step));
                    double vHat = v[t][j] / (1 - Math.Pow(beta2, step));
                    u[j] = mHat / (Math.Sqrt(vHat) + eps);
                }
                stepRms[t] = Math.Sqrt(u.Sum(x => x * x) / u.Length);
                double divisor = clip ? Math.Max(1, stepRms[t] / d) : 1;
                for (int j = 0; j < u.Length; j++) p[t][j] = p[t][j] * (1 - Lr * wd) - Lr * u[j] / divisor;
            }
            after.Add(p.Select(t => (double[])t.Clone()).ToArray());
            rms.Add(stepRms);
        }
        return (after.ToArray(), rms.ToArray());
    }

    private static float[][] Copy(float[][] x) => x.Select(t => (float[])t.Clone()).ToArray();

    /// <summary>|actual − expected| ≤ 1e-6 + 1e-5·|expected − initial| (the float parameters and moments against the double formula).</summary>
    private static void AssertNear(double[][] expected, float[][] actual, string what)
    {
        var p0 = Initial();
        for (int t = 0; t < expected.Length; t++)
            for (int j = 0; j < expected[t].Length; j++)
            {
                double tolerance = 1e-6 + 1e-5 * Math.Abs(expected[t][j] - p0[t][j]);
                Assert.True(Math.Abs(actual[t][j] - expected[t][j]) <= tolerance,
                    $"{what}, {Specs[t].Name}[{j}]: expected {expected[t][j]:R}, got {actual[t][j]:R}");
            }
    }

    /// <summary>The largest |clipped − unclipped| over the formula's final parameters: how far apart the two trajectories are.</summary>
    private static double ClippingEffect(float[][][] gradients, double beta1, double d)
    {
        var clipped = Formula(gradients, beta1, 0.999, 1e-8, 0.01, d).Parameters[^1];
        var unclipped = Formula(gradients, beta1, 0.999, 1e-8, 0.01, d, clip: false).Parameters[^1];
        return clipped.Zip(unclipped).SelectMany(x => x.First.Zip(x.Second, (a, b) => Math.Abs(a - b))).Max();
    }

    [Theory]
    [InlineData("mixed", 0.9, 1.0)]     // RMS(u) < 1 on every step: never clipped
    [InlineData("mixed", 0.9, 0.5)]     // the same gradients with d = 0.5: RMS(u) > d on steps 1 and 2 (clipped), < d on step 3
    [InlineData("growing", 0.0, 1.0)]   // W: RMS(u) > 1 on step 3 only; B: never
    [InlineData("growing", 0.9, 1.0)]   // with momentum the growth is damped: RMS(u) < 1 throughout
    public void Steps_follow_the_formula(string gradientsName, double beta1, double d)
    {
        var gradients = gradientsName == "mixed" ? Mixed() : Growing();
        var (expected, expectedRms) = Formula(gradients, beta1, 0.999, 1e-8, 0.01, d);
        var opt = new AdamWUpdateClip(Specs, beta1: beta1, weightDecay: 0.01, clipThreshold: d);
        var p = Initial();
        for (int step = 0; step < gradients.Length; step++)
        {
            var g = Copy(gradients[step]);
            opt.Step(Lr, p, g);
            Assert.Equal(gradients[step].SelectMany(x => x), g.SelectMany(x => x));   // the gradients are not written
            for (int t = 0; t < Specs.Length; t++)
                Assert.Equal(expectedRms[step][t], opt.LastUpdateRms[t], 1e-6 * expectedRms[step][t]);
            AssertNear(expected[step], p, $"step {step + 1}");
        }
    }

    [Fact]
    public void The_cases_are_on_both_sides_of_the_threshold_and_clipping_moves_the_result_far_beyond_the_tolerance()
    {
        // What the theory's cases claim, from the formula: otherwise a missing or wrong clip would go unnoticed.
        var mixed = Formula(Mixed(), 0.9, 0.999, 1e-8, 0.01, 1).Rms;
        Assert.All(mixed.SelectMany(r => r), r => Assert.True(r < 1, $"RMS(u) {r:R}"));
        Assert.All(mixed[0].Concat(mixed[1]), r => Assert.True(r > 0.5, $"RMS(u) {r:R}"));   // d = 0.5 clips steps 1 and 2 …
        Assert.All(mixed[2], r => Assert.True(r < 0.5, $"RMS(u) {r:R}"));                    // … and not step 3
        var growing = Formula(Growing(), 0.0, 0.999, 1e-8, 0.01, 1).Rms;
        Assert.True(growing[0][0] < 1 && growing[1][0] < 1 && growing[2][0] > 1.5, $"W's RMS(u): {string.Join(", ", growing.Select(r => r[0]))}");
        Assert.All(growing, r => Assert.InRange(r[1], 0.9, 1));
        // The clipped and unclipped trajectories differ by 1000× the tolerance where a step is clipped, and not at all where none is.
        Assert.True(ClippingEffect(Mixed(), 0.9, 0.5) > 1e-3);
        Assert.True(ClippingEffect(Growing(), 0.0, 1) > 1e-3);
        Assert.Equal(0, ClippingEffect(Mixed(), 0.9, 1));
    }

    [Fact]
    public void Without_clipping_it_is_the_librarys_dense_AdamW_and_with_it_is_not()
    {
        // RMS(u) < 1 throughout: the same trajectory as DenseAdamW (the library's vectorised kernel, float arithmetic).
        var clipped = new AdamWUpdateClip(Specs);
        var dense = new DenseAdamW(Specs);
        var a = Initial();
        var b = Initial();
        foreach (var g in Mixed())
        {
            clipped.Step(Lr, a, Copy(g));
            dense.Step(Lr, b, Copy(g));
        }
        for (int t = 0; t < Specs.Length; t++)
            for (int j = 0; j < a[t].Length; j++) Assert.True(Math.Abs(a[t][j] - b[t][j]) <= 1e-6, $"{Specs[t].Name}[{j}]: {a[t][j]:R} vs {b[t][j]:R}");

        // A clipped step (W on step 3 with β1 = 0) moves W less than the unclipped one, and leaves B as it is.
        var c = new AdamWUpdateClip(Specs, beta1: 0);
        var n = new DenseAdamW(Specs, beta1: 0);
        var pc = Initial();
        var pn = Initial();
        foreach (var g in Growing())
        {
            c.Step(Lr, pc, Copy(g));
            n.Step(Lr, pn, Copy(g));
        }
        Assert.True(c.LastUpdateRms[0] > 1.5);
        double movedClipped = pc[0].Zip(Initial()[0], (x, y) => Math.Abs(x - y)).Sum();
        double movedPlain = pn[0].Zip(Initial()[0], (x, y) => Math.Abs(x - y)).Sum();
        Assert.True(movedClipped < 0.9 * movedPlain, $"W moved {movedClipped} clipped, {movedPlain} not");
        for (int j = 0; j < pc[1].Length; j++) Assert.True(Math.Abs(pc[1][j] - pn[1][j]) <= 1e-6, $"B[{j}]: {pc[1][j]:R} vs {pn[1][j]:R}");
    }

    [Fact]
    public void Bad_input_is_refused_before_any_state_changes()
    {
        var opt = new AdamWUpdateClip(Specs);
        var fresh = new AdamWUpdateClip(Specs);
        var p = Initial();
        var g = Mixed()[0];
        var e = Assert.Throws<ArgumentException>(() => opt.Step(Lr, p, [g[0], new float[3]]));
        Assert.Contains("tensor B", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => opt.Step(Lr, [p[0]], [g[0]]));
        Assert.Equal(Initial().SelectMany(x => x), p.SelectMany(x => x));
        // The refused steps changed nothing: the next step is a first step.
        var q = Initial();
        opt.Step(Lr, p, Copy(g));
        fresh.Step(Lr, q, Copy(g));
        Assert.Equal(q.SelectMany(x => x), p.SelectMany(x => x));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void A_bad_threshold_is_refused(double d)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new AdamWUpdateClip(Specs, clipThreshold: d));
        Assert.Equal("clipThreshold", e.ParamName);
    }

    [Fact]
    public void State_is_two_floats_per_parameter_or_one_without_momentum()
    {
        Assert.Equal(8L * 10, new AdamWUpdateClip(Specs).StateBytes);
        Assert.Equal(4L * 10, new AdamWUpdateClip(Specs, beta1: 0).StateBytes);
        var c = TinyLmModel.Config;
        Assert.Equal(8L * c.Specs().Sum(ModelConfig.Length), OptimizerCatalog.Create("AdamWUpdateClip", c).StateBytes);
    }

    [Fact]
    public void The_catalogue_and_the_sweep_know_it_outside_the_bar()
    {
        var optimizer = OptimizerCatalog.Create("AdamWUpdateClip", TinyLmModel.Config);
        Assert.IsType<AdamWUpdateClip>(optimizer);
        Assert.Equal("AdamWUpdateClip", optimizer.Name);
        Assert.Contains("update clipping d = 1", optimizer.Implementation, StringComparison.Ordinal);
        Assert.Contains("AdamWUpdateClip", OptimizerCatalog.Names);
        Assert.False(OptimizerCatalog.FallsBackToRuntime("AdamWUpdateClip", TinyLmModel.Config with { DModel = 128 }));
        Assert.Contains(Sweep.Configurations(), c => c.Name == "AdamWUpdateClip" && c.Settings is null);
        Assert.Equal(["AdamW", "AdamWClip", "AdamWUpdateClip"], OptimizerCatalog.AdamWNames);
    }
}

/// <summary>The sweep's names in messages, and the recommended settings in the frontier plot.</summary>
public class SweepNamesTests
{
    /// <summary>Expands "{a,b}" groups of a pattern into every combination (a test-side reading of the description).</summary>
    private static IEnumerable<string> Expand(string pattern)
    {
        int open = pattern.IndexOf('{');
        if (open < 0) { yield return pattern; yield break; }
        int close = pattern.IndexOf('}', open);
        foreach (var choice in pattern[(open + 1)..close].Split(','))
            foreach (var rest in Expand(pattern[(close + 1)..]))
                yield return pattern[..open] + choice + rest;
    }

    [Fact]
    public void The_description_names_exactly_the_configurations_the_parser_accepts()
    {
        var parts = Sweep.DescribeConfigurations().Split("; ");
        var names = Sweep.Configurations().Select(c => c.Name).ToArray();
        var described = parts.SelectMany(Expand).ToArray();
        // "R1 b1={0.9,0.0}" expands to the Ratio-1 pair; "R{4,…} {Rotation,Universal} {Sum,Mean} b1={0.9,0.0}" to the rest of the grid.
        Assert.Equal(names.Order(StringComparer.Ordinal), described.Order(StringComparer.Ordinal));
        Assert.Contains("Factored q4 sr b1=0.9", parts);
        Assert.Contains("AdamWUpdateClip", parts);
        Assert.Contains("AdamW4bit", parts);
    }

    [Fact]
    public void An_unknown_configuration_lists_the_factored_settings_and_the_anchors()
    {
        var (output, error) = (new StringWriter(), new StringWriter());
        Assert.Equal(Cli.UsageError, Cli.Run(["--sweep", "--configs", "AdamW;No such"], output, error));
        string message = error.ToString();
        Assert.Contains("'No such'", message, StringComparison.Ordinal);
        foreach (var name in new[] { "Factored clip=1 dense=0 b1=0.0", "Factored q4 sr b1=0.9", "AdamWUpdateClip", "Adafactor", "AdamMini", "R{4,8,16,32,40,64,128}" })
            Assert.Contains(name, message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_recommended_variants_are_found_in_the_sweep_and_labelled_first()
    {
        var recommended = Sweep.RecommendedConfigurations();
        Assert.Equal("FactoredQ4", recommended["Factored q4 sr b1=0.9"]);
        Assert.Equal("FactoredClipAll", recommended["Factored clip=1 dense=0 b1=0.0"]);
        Assert.Equal(2, recommended.Count);

        static SweepRun Run(string name, int ratio, double loss) => new(name, ratio, "-", "-", 0.9, 1e-2f, loss, loss, 1000, 1000, 1, 1, "test", 1);
        var q4 = Run("Factored q4 sr b1=0.9", 32, 1.85);
        var frontier = Run("Factored q4 sr gclip=1 b1=0.9", 32, 1.84);
        var anchor = Run("Adafactor", 0, 1.88);
        var adamW = Run("AdamW", 0, 1.90);
        var other = Run("Factored b1=0.0", 32, 1.80);
        var order = SweepReport.LabelOrder([other, anchor, adamW, frontier, q4], [frontier], recommended).ToArray();
        Assert.Equal([q4, frontier, adamW, anchor, other], order);
    }
}
