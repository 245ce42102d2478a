using System.Globalization;
using Collins.Kernels;

namespace Collins.Tests;

/// <summary>
/// The per-CPU tuning of the Rotation kernels and the factored row bodies (<see cref="CpuTuning"/>): which CPU gets which entry,
/// how an override is read, and that no tuning changes a value (prefetch distances, store kind, tile size and rows per pass change
/// speed only).
/// </summary>
[Trait("Category", "Kernels")]
public class CpuTuningTests
{
    // CPUID leaf 1 EAX, laid out by hand from the vendors' manuals: stepping 3:0, model 7:4, family 11:8, extended model 19:16,
    // extended family 27:20. The displayed family is family + extended family when family = 0xF; the displayed model takes the
    // extended model as its high nibble when family is 6 or 0xF.
    private static int Signature(int family, int model, int extendedModel, int extendedFamily, int stepping = 1)
        => stepping | (model << 4) | (family << 8) | (extendedModel << 16) | (extendedFamily << 20);

    [Fact]
    public void The_identity_folds_the_extended_family_and_model_as_the_vendors_do()
    {
        // AMD Zen 5 (EPYC 9005): family 0xF + 0x0B = 26, model 0x02.
        Assert.Equal(new CpuIdentity("AuthenticAMD", 26, 2), CpuIdentity.FromSignature("AuthenticAMD", Signature(0xF, 0x2, 0x0, 0x0B)));
        // AMD Zen 3 (family 0x19 = 25), model 0x01 with extended model 0: a model above 15 needs the extended nibble.
        Assert.Equal(new CpuIdentity("AuthenticAMD", 25, 0x11), CpuIdentity.FromSignature("AuthenticAMD", Signature(0xF, 0x1, 0x1, 0x0A)));
        // Intel Emerald Rapids: family 6, model 0xCF = 207 (extended model 0xC).
        Assert.Equal(new CpuIdentity("GenuineIntel", 6, 207), CpuIdentity.FromSignature("GenuineIntel", Signature(0x6, 0xF, 0xC, 0x0)));
        // A family other than 6 and 0xF ignores both extended fields.
        Assert.Equal(new CpuIdentity("GenuineIntel", 5, 2), CpuIdentity.FromSignature("GenuineIntel", Signature(0x5, 0x2, 0x3, 0x7)));
    }

    [Fact]
    public void The_running_CPU_is_the_one_the_kernel_reports()
    {
        if (!File.Exists("/proc/cpuinfo") || !System.Runtime.Intrinsics.X86.X86Base.IsSupported) return;   // an independent source exists on Linux x86 only
        string? vendor = null, family = null, model = null;
        foreach (var line in File.ReadLines("/proc/cpuinfo"))
        {
            int colon = line.IndexOf(':');
            if (colon < 0) { if (vendor is not null) break; continue; }
            string key = line[..colon].Trim(), value = line[(colon + 1)..].Trim();
            if (key == "vendor_id") vendor ??= value;
            else if (key == "cpu family") family ??= value;
            else if (key == "model") model ??= value;
        }
        Assert.Equal(new CpuIdentity(vendor!, int.Parse(family!, CultureInfo.InvariantCulture), int.Parse(model!, CultureInfo.InvariantCulture)), CpuIdentity.Current);
    }

    [Fact]
    public void Each_known_CPU_gets_its_entry_and_every_other_the_default()
    {
        Assert.Equal("amd-26", CpuTuning.For(new("AuthenticAMD", 26, 2)).Name);
        Assert.Equal("amd-26", CpuTuning.For(new("AuthenticAMD", 26, 68)).Name);        // every model of the family
        Assert.Equal("intel-6-207", CpuTuning.For(new("GenuineIntel", 6, 207)).Name);
        Assert.Same(CpuTuning.Default, CpuTuning.For(new("GenuineIntel", 6, 143)));     // another model of family 6
        Assert.Same(CpuTuning.Default, CpuTuning.For(new("AuthenticAMD", 25, 1)));
        Assert.Same(CpuTuning.Default, CpuTuning.For(new("Arm64", 0, 0)));
        Assert.Same(CpuTuning.For(CpuIdentity.Current), CpuTuning.FromEnvironment(null, CpuIdentity.Current));
        Assert.Same(CpuTuning.For(CpuIdentity.Current), CpuTuning.FromEnvironment("  ", CpuIdentity.Current));
    }

    [Fact]
    public void Every_entry_is_valid_as_the_parser_would_accept_it()
    {
        foreach (var t in CpuTuning.Known.Select(e => e.Tuning).Prepend(CpuTuning.Default))
        {
            Assert.Equal(t with { Name = "custom" }, CpuTuning.Parse(t.Key, CpuTuning.Default));   // Key reads back to the same values
            Assert.Same(t, CpuTuning.Parse(t.Name, CpuTuning.Default));
        }
    }

    [Fact]
    public void An_override_changes_only_the_keys_it_names()
    {
        var basis = CpuTuning.Default;
        var t = CpuTuning.Parse(" phase1=512 , tile=4096,nt=0 ", basis);
        Assert.Equal(new CpuTuning("custom", 512, basis.Phase2Prefetch, basis.SketchPrefetch, 0, 4096), t);
        Assert.Equal(basis with { Name = "custom", Phase2Prefetch = 0, SketchPrefetch = 1024 }, CpuTuning.Parse("phase2=0,sketch=1024", basis));
    }

    [Theory]
    [InlineData("fast", "neither a tuning name")]
    [InlineData("phase1=100", "phase1=100")]
    [InlineData("phase2=-64", "phase2=-64")]
    [InlineData("tile=100", "tile=100")]
    [InlineData("tile=131072", "tile=131072")]
    [InlineData("nt=-1", "nt=-1")]
    [InlineData("factored=100", "factored=100")]
    [InlineData("colour=3", "unknown key 'colour'")]
    [InlineData("phase1=12.5", "'phase1=12.5' is not key=integer")]
    [InlineData("phase1", "neither a tuning name")]
    [InlineData("phase1=64,sketch", "'sketch' is not key=integer")]
    public void A_bad_override_is_refused_naming_the_variable_and_the_part(string value, string part)
    {
        var e = Assert.Throws<InvalidOperationException>(() => CpuTuning.FromEnvironment(value, new("AuthenticAMD", 26, 2)));
        Assert.Contains(CpuTuning.EnvironmentVariable, e.Message);
        Assert.Contains(part, e.Message);
    }

    [Fact]
    public void A_distance_the_kernels_are_not_compiled_for_is_refused_by_them()
    {
        const int k = 64;
        var g = new float[2 * k];
        var sv = new float[k];
        int[] rho = [0, 5], sigma = [1, -1];
        foreach (int d in CpuTuning.Distances)
            Assert.True(RotationCpu.AccumulateTilePrefetched(g, default, sv, 0, k, k, k, rho, sigma, nonTemporal: false, prefetch: d));
        Assert.Throws<ArgumentOutOfRangeException>(() => RotationCpu.AccumulateTilePrefetched(g, default, sv, 0, k, k, k, rho, sigma, false, 32));
        var p = new float[2 * k];
        var v = new float[k];
        var s = StepScalars.For(1, 1e-3f, 0, 0.999, 0);
        foreach (int d in CpuTuning.Distances)
            RotationCpu.UpdateApplyTilePrefetched(p, g, default, v, default, sv, 0, k, k, k, rho, sigma, 0f, 1f, 0.999f, 0.001f, 1e-8f, in s, false, d, d);
        Assert.Throws<ArgumentOutOfRangeException>(() => RotationCpu.UpdateApplyTilePrefetched(p, g, default, v, default, sv, 0, k, k, k, rho, sigma, 0f, 1f, 0.999f, 0.001f, 1e-8f, in s, false, 32, 64));
        Assert.Throws<ArgumentOutOfRangeException>(() => RotationCpu.UpdateApplyTilePrefetched(p, g, default, v, default, sv, 0, k, k, k, rho, sigma, 0f, 1f, 0.999f, 0.001f, 1e-8f, in s, false, 64, 2048));
    }

    public static TheoryData<string> Tunings => new()
    {
        "phase1=0,phase2=0,sketch=0,factored=0", "phase1=64,phase2=64,sketch=64,factored=64", "phase1=256,phase2=128,sketch=128,factored=128",
        "phase1=512,phase2=512,sketch=256,factored=512", "phase1=1024,phase2=1024,sketch=1024,tile=256,factored=1024", "tile=256,nt=0", "tile=65536,nt=0", "tile=4096,nt=2147483647", "tile=272,nt=0",
        "rows=8,rows2=8", "rows=3,rows2=5,tile=256,nt=0", "rows=1,rows2=1,tile=4096", "rows=31,rows2=2", "rows=64,rows2=64",
        "rows=3,rows2=3,tile=16384,nt=0", "rows=8,rows2=8,tile=8192",   // tiles of several 2048-bucket chunks, passes in each
    };

    [Theory]
    [MemberData(nameof(Tunings))]
    public void No_tuning_changes_a_value(string tuning)
    {
        var t = CpuTuning.Parse(tuning, CpuTuning.Default);
        // Rotation tensors of several tiles with a ragged last row (k = ceil(d / Ratio)), both estimates, with and without a first
        // moment, weight decay and gradient-norm clipping; a dense tensor and a Universal one ride along (they have no tuning).
        // The factored settings put the matrices through the factored kernel's row loops (rows of 611, 1500 and 337 columns: the
        // prefetch runs across row ends), with update clipping and with a 4-bit first moment.
        TensorSpec[] specs = [new("W", [97, 611]), new("v", 40_003), new("b", 64), new("E", [3, 7, 1500]), new("L", [1021, 337])];
        foreach (var settings in new OptimizerSettings[]
        {
            new() { Ratio = 8, WeightDecay = 0.01 },
            new() { Ratio = 16, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, MaxGradientNorm = 0.5 },
            new() { Ratio = 5, SecondMoment = SecondMomentEstimate.Mean },
            new() { Ratio = 32, WeightDecay = 0.01 },                                   // 32 rows: several passes of 8
            new() { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, WeightDecay = 0.01 },
            new() { SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, StochasticRounding = true, MaxGradientNorm = 0.5 },
        })
        {
            using var reference = new CountSketchAdam(settings, specs, CpuTuning.Default) { MaxThreads = 2 };
            using var tuned = new CountSketchAdam(settings, specs, t) { MaxThreads = 3 };
            var rng = new Random(11);
            float[][] p = reference.Tensors.Select(s => Enumerable.Range(0, s.Length).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()).ToArray();
            float[][] q = p.Select(x => (float[])x.Clone()).ToArray();
            for (int step = 1; step <= 4; step++)
            {
                float[][] g = reference.Tensors.Select(s => Enumerable.Range(0, s.Length).Select(_ => (float)(rng.NextDouble() - 0.5) * step).ToArray()).ToArray();
                Assert.Equal(StepOutcome.Applied, reference.Step(1e-2f, p, g));
                Assert.Equal(StepOutcome.Applied, tuned.Step(1e-2f, q, g));
            }
            for (int i = 0; i < specs.Length; i++)
                Assert.True(p[i].AsSpan().SequenceEqual(q[i]), $"{tuning}, {specs[i].Name}: parameters differ");
            using MemoryStream a = new(), b = new();
            reference.Save(a);
            tuned.Save(b);
            Assert.True(a.ToArray().AsSpan().SequenceEqual(b.ToArray()), $"{tuning}: state differs");
        }
    }

    [Fact]
    public void The_factored_kernel_runs_the_copy_of_its_tuning_s_distance()
    {
        // Which instantiation each tile kernel is (its prefetch distance as a type argument), read from the private delegates.
        var settings = new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1 };
        var plan = new TensorPlan(new TensorSpec("M", [64, 64]), settings);
        foreach (int d in CpuTuning.Distances)
        {
            var kernel = new FactoredCpuKernel(plan, settings, tuning: CpuTuning.Default with { FactoredPrefetch = d });
            foreach (string field in new[] { "_accumulate", "_apply", "_squares" })
            {
                var tile = (Delegate)typeof(FactoredCpuKernel).GetField(field, System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(kernel)!;
                var ahead = tile.Method.GetGenericArguments().Single();
                Assert.Equal(d, (int)ahead.GetProperty("Ahead")!.GetValue(null)!);
            }
        }
        Assert.Same(CpuTuning.Current, new FactoredCpuKernel(plan, settings).Tuning);
    }

    [Fact]
    public void A_tuning_the_kernels_cannot_run_is_refused_when_the_optimizer_is_built()
    {
        TensorSpec[] specs = [new("d", 64), new("u", 50_000)];
        foreach (var bad in new[]
        {
            CpuTuning.Default with { Phase2Prefetch = 100 }, CpuTuning.Default with { SketchPrefetch = -1 },
            CpuTuning.Default with { TileBuckets = 1000 }, CpuTuning.Default with { TileBuckets = 0 },
            CpuTuning.Default with { NonTemporalMinLength = -5 }, CpuTuning.Default with { Phase2RowsPerPass = -1 },
            CpuTuning.Default with { FactoredPrefetch = 32 },
        })
        {
            var e = Assert.Throws<ArgumentException>(() => new CountSketchAdam(new OptimizerSettings { Ratio = 8 }, specs, bad));
            Assert.Contains("CPU tuning", e.Message);
        }
        // A factored tensor's kernel checks the tuning too (here the only tensor).
        var factored = Assert.Throws<ArgumentException>(() => new CountSketchAdam(new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored },
                                                                                  [new TensorSpec("M", [64, 64])], CpuTuning.Default with { FactoredPrefetch = 100 }));
        Assert.Contains("factored=100", factored.Message);
        foreach (var entry in CpuTuning.Known) entry.Tuning.Validate();
        CpuTuning.Default.Validate();
    }

    // (rows R, buckets k, length of the last row, tile [b0, b1)): several chunks of 2048 (10007 buckets), whole chunks, a chunk
    // boundary off the tile start (8208 from 4096, 4160 from 64), a last row shorter than a vector, and tiles shorter than one vector.
    [Theory]
    [InlineData(7, 10007, 3001, 0, 10007)]
    [InlineData(7, 10007, 3001, 16, 9000)]
    [InlineData(5, 8192, 8192, 0, 8192)]
    [InlineData(5, 8208, 17, 4096, 8208)]
    [InlineData(3, 4111, 4111, 0, 4111)]
    [InlineData(9, 64, 33, 16, 27)]
    [InlineData(9, 64, 33, 0, 15)]
    [InlineData(32, 4160, 1000, 64, 4160)]
    public void Passes_over_fewer_rows_give_the_sums_and_steps_of_one_pass(int rows, int k, int last, int b0, int b1)
    {
        var rng = new Random(rows * k + b0);
        int d = (rows - 1) * k + last;
        var g = Enumerable.Range(0, d).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
        var rho = Enumerable.Range(0, rows).Select(r => r == 0 ? 0 : rng.Next(k)).ToArray();
        var sigma = Enumerable.Range(0, rows).Select(_ => rng.Next(2) * 2 - 1).ToArray();
        foreach (bool nonTemporal in new[] { false, true })
            foreach (bool hasM in new[] { true, false })
                foreach (bool mean in new[] { false, true })
                    foreach (int n in new[] { 1, 2, 3, rows - 1, rows, 1000 })
                    {
                        string what = $"nt={nonTemporal} m={hasM} mean={mean} rows/pass={n}";
                        AlignedFloats sm0 = new(hasM ? k : 0), sv0 = new(k), sm1 = new(hasM ? k : 0), sv1 = new(k);
                        bool f0 = RotationCpu.AccumulateTilePrefetched(g, sm0.Span, sv0.Span, b0, b1, k, last, rho, sigma, nonTemporal, 128, 0);
                        bool f1 = RotationCpu.AccumulateTilePrefetched(g, sm1.Span, sv1.Span, b0, b1, k, last, rho, sigma, nonTemporal, 128, n);
                        Assert.Equal(f0, f1);
                        Assert.True(sv0.Span.SequenceEqual(sv1.Span) && sm0.Span.SequenceEqual(sm1.Span), $"{what}: phase-1 sums differ");
                        var p0 = Enumerable.Range(0, d).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray();
                        var p1 = (float[])p0.Clone();
                        float[] m0 = new float[hasM ? k : 0], m1 = new float[hasM ? k : 0];
                        var v0 = Enumerable.Range(0, k).Select(_ => (float)rng.NextDouble()).ToArray();
                        var v1 = (float[])v0.Clone();
                        var s = StepScalars.For(3, 1e-2f, hasM ? 0.9 : 0, 0.999, 0.01);
                        float beta1 = hasM ? 0.9f : 0f;
                        RotationCpu.UpdateApplyTilePrefetched(p0, hasM ? default : g, m0, v0, sm0.Span, sv0.Span, b0, b1, k, last, rho, sigma,
                                                              beta1, 1 - beta1, 0.999f, 0.001f, 1e-8f, in s, mean, 256, 64, 0);
                        RotationCpu.UpdateApplyTilePrefetched(p1, hasM ? default : g, m1, v1, sm1.Span, sv1.Span, b0, b1, k, last, rho, sigma,
                                                              beta1, 1 - beta1, 0.999f, 0.001f, 1e-8f, in s, mean, 256, 64, n);
                        Assert.True(p0.AsSpan().SequenceEqual(p1) && v0.AsSpan().SequenceEqual(v1) && m0.AsSpan().SequenceEqual(m1), $"{what}: phase 2 differs");
                    }
    }
}
