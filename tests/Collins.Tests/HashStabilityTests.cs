using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using Collins.Hashing;
using Collins.Reference;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

/// <summary>
/// Hash constants are the compatibility contract of every saved checkpoint (a checkpoint stores moments by bucket,
/// and the buckets are these constants): they must never change for a given (seed, name, d, ratio). The literals
/// below were computed once, outside this code base, by a Python transcription of HashDerivation's documented
/// derivation (FNV-1a over the name's UTF-16 code units, low byte then high byte; SplitMix64 seeded with
/// seed ^ 0x9E3779B97F4A7C15, xor the mixed FNV hash; per layout a SplitMix64 stream from key ^ "Rotation" /
/// "Universl"); the first four W1 rotations and signs also match the README's example. They are checked against
/// the runtime (TensorPlan, HashDerivation) and against a second, BigInteger transcription written in this file.
/// </summary>
public class HashStabilityTests
{
    public static TheoryData<long, string, int, int, int, int[], int[]> RotationPins() => new()
    {
        // seed, name, d, ratio, k, first rotations, first signs
        { 0, "W1", 100352, 32, 3136, new[] { 283, 2432, 2887, 1560, 2722, 1546, 1360, 1114 }, new[] { 1, -1, -1, -1, -1, -1, -1, 1 } },
        { 7, "Embed", 4160, 16, 260, new[] { 37, 36, 89, 57, 61, 124, 253, 11 }, new[] { 1, 1, 1, -1, -1, 1, 1, -1 } },
        { -3, "\u03a9\u540d", 1000, 8, 125, new[] { 86, 86, 83, 20, 38, 90, 35, 11 }, new[] { -1, 1, -1, -1, -1, -1, -1, -1 } },
        { 123456789012, "L0Wqkv", 12288, 4, 3072, new[] { 92, 2930, 3047, 131 }, new[] { 1, 1, -1, 1 } },
    };

    [Theory]
    [MemberData(nameof(RotationPins))]
    public void Rotation_constants_are_pinned(long seed, string name, int d, int ratio, int k, int[] rotations, int[] signs)
    {
        var plan = new TensorPlan(new TensorSpec(name, new[] { d }, Sketching: TensorSketching.Sketched), new OptimizerSettings { Ratio = ratio, Seed = seed });
        Assert.Equal(k, plan.Buckets);
        Assert.Equal(rotations, plan.Rotations[..rotations.Length].ToArray());
        Assert.Equal(signs, plan.Signs[..signs.Length].ToArray());
        var (r2, s2) = IndependentRotation(seed, name, plan.Rows, k);
        Assert.Equal(r2, plan.Rotations.ToArray());
        Assert.Equal(s2, plan.Signs.ToArray());
    }

    public static TheoryData<long, string, uint, uint, uint, uint> UniversalPins() => new()
    {
        { 0, "W1", 105748973, 780161382, 1576108718, 301464813 },
        { 12345, "Head", 1970153216, 456106485, 1230529906, 781754017 },
        { -3, "\u03a9\u540d", 1311473879, 590612610, 623195910, 901697724 },
        { 123456789012, "L0Wqkv", 1050707608, 1711391583, 1718544760, 1619713816 },
    };

    [Theory]
    [MemberData(nameof(UniversalPins))]
    public void Universal_constants_are_pinned(long seed, string name, uint a, uint b, uint signA, uint signB)
    {
        HashDerivation.Universal(seed, name, out uint ra, out uint rb, out uint rsa, out uint rsb);
        Assert.Equal((a, b, signA, signB), (ra, rb, rsa, rsb));
        var plan = new TensorPlan(new TensorSpec(name, new[] { 5000 }, Sketching: TensorSketching.Sketched),
            new OptimizerSettings { Seed = seed, Layout = SketchLayout.Universal });
        Assert.Equal((a, b, signA, signB), (plan.UniversalA, plan.UniversalB, plan.UniversalSignA, plan.UniversalSignB));
        Assert.Equal((a, b, signA, signB), IndependentUniversal(seed, name));
    }

    // ---- a second transcription of the documented derivation, in BigInteger arithmetic mod 2^64 ----
    private static readonly BigInteger Two64 = BigInteger.One << 64;
    private static BigInteger Mul(BigInteger x, BigInteger y) => x * y % Two64;
    private static BigInteger Mix(BigInteger z)
    {
        z = Mul(z ^ (z >> 30), 0xBF58476D1CE4E5B9UL);
        z = Mul(z ^ (z >> 27), 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }
    private static BigInteger Next(ref BigInteger state) { state = (state + 0x9E3779B97F4A7C15UL) % Two64; return Mix(state); }
    private static BigInteger Key(long seed, string name)
    {
        BigInteger h = 14695981039346656037UL;
        foreach (byte unit in System.Text.Encoding.Unicode.GetBytes(name)) { h ^= unit; h = Mul(h, 1099511628211UL); }
        BigInteger state = ((BigInteger)seed + Two64) % Two64 ^ 0x9E3779B97F4A7C15UL;
        return Next(ref state) ^ Mix(h);
    }
    private static (int[] Rotations, int[] Signs) IndependentRotation(long seed, string name, int rows, int k)
    {
        BigInteger state = Key(seed, name) ^ 0x526F746174696F6EUL;
        var r = new int[rows]; var s = new int[rows];
        for (int i = 0; i < rows; i++)
        {
            var x = Next(ref state);
            r[i] = (int)((x >> 1) % k);
            s[i] = x.IsEven ? 1 : -1;
        }
        return (r, s);
    }
    private static (uint, uint, uint, uint) IndependentUniversal(long seed, string name)
    {
        const long p = 2147483647;
        BigInteger state = Key(seed, name) ^ 0x556E69766572736CUL;
        uint a = (uint)(1 + Next(ref state) % (p - 1)), b = (uint)(Next(ref state) % p);
        uint sa = (uint)(1 + Next(ref state) % (p - 1)), sb = (uint)(Next(ref state) % p);
        return (a, b, sa, sb);
    }
}

/// <summary>
/// A version-1 checkpoint committed as a file (Fixtures/), written once by <see cref="Write_fixtures"/> (run with
/// COLLINS_WRITE_FIXTURES=1): it must keep loading, and continuing from it must reach the committed state bit for
/// bit. The committed state is itself checked against the scalar reference here, so it is not only a copy of
/// what the optimizer once produced.
/// </summary>
public class CheckpointFixtureTests
{
    private static string FixtureDir([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "Fixtures");
    private static string Fixture(string name) => Path.Combine(FixtureDir(), name);

    private static readonly OptimizerSettings Settings = new() { Ratio = 8, WeightDecay = 0.01, Seed = 11, Beta2 = 0.99 };
    private static TensorSpec[] Specs() => new[]
    {
        new TensorSpec("W1", new[] { 64, 64 }),                                               // sketched, k 512
        new TensorSpec("W2", new[] { 30, 33 }, Ratio: 4, Sketching: TensorSketching.Sketched), // k 248
        new TensorSpec("b", new[] { 16 }),                                                     // dense
    };
    private const int SavedAt = 3, ContinueSteps = 4;
    private const float LearningRate = 1e-2f;

    /// <summary>Values from a fixed formula (SplitMix64 of (stream, tensor, i)), independent of System.Random.</summary>
    private static float[][] Values(int stream, double scale)
        => Specs().Select((s, t) => Enumerable.Range(0, s.Shape.Aggregate(1, (x, y) => x * y)).Select(i =>
        {
            ulong state = (ulong)stream * 1_000_003UL + (ulong)t * 7919UL + (ulong)i * 0x9E3779B97F4A7C15UL;
            ulong x = HashDerivation.SplitMix64(ref state);
            return (float)(scale * ((x >> 40) / (double)(1 << 24) - 0.5));
        }).ToArray()).ToArray();
    private static float[][] InitialParameters() => Values(0, 2.0);
    private static float[][] Gradient(int step) => Values(step, 1.0);

    private static byte[] Floats(float[][] x) { var b = new byte[x.Sum(a => a.Length) * 4]; int o = 0; foreach (var a in x) foreach (var f in a) { BinaryPrimitives.WriteSingleLittleEndian(b.AsSpan(o), f); o += 4; } return b; }
    private static float[][] FromFloats(byte[] b) { int o = 0; return Specs().Select(s => Enumerable.Range(0, s.Shape.Aggregate(1, (x, y) => x * y)).Select(_ => { float f = BinaryPrimitives.ReadSingleLittleEndian(b.AsSpan(o)); o += 4; return f; }).ToArray()).ToArray(); }

    /// <summary>Runs only with COLLINS_WRITE_FIXTURES=1 (skipped, with that reason, otherwise): it writes, it checks nothing.</summary>
    private sealed class WriteFixturesFactAttribute : FactAttribute
    {
        public WriteFixturesFactAttribute()
        {
            if (Environment.GetEnvironmentVariable("COLLINS_WRITE_FIXTURES") != "1")
                Skip = "writes the checkpoint fixtures; run with COLLINS_WRITE_FIXTURES=1 (and only this test) to regenerate them";
        }
    }

    [WriteFixturesFact]
    public void Write_fixtures()
    {
        // The step-3 files are written once and then kept: they are the old file every later build must load. The step-7
        // state is what the current arithmetic reaches from them (rewritten when a change of the kernels legitimately moves
        // the last bits, e.g. when CountSketchAdam moved onto the generated optimizers' kernels), still checked against the
        // scalar reference below.
        Directory.CreateDirectory(FixtureDir());
        if (!File.Exists(Fixture("v1-rotation-step3.ckpt")))
        {
            using var first = new CountSketchAdam(Settings, Specs());
            var p0 = InitialParameters();
            for (int s = 1; s <= SavedAt; s++) Assert.Equal(StepOutcome.Applied, first.Step(LearningRate, p0, Gradient(s)));
            first.SaveToFile(Fixture("v1-rotation-step3.ckpt"));
            File.WriteAllBytes(Fixture("v1-rotation-step3.params.bin"), Floats(p0));
        }
        using var opt = new CountSketchAdam(Settings, Specs());
        opt.LoadFromFile(Fixture("v1-rotation-step3.ckpt"));
        var p = FromFloats(File.ReadAllBytes(Fixture("v1-rotation-step3.params.bin")));
        for (int s = SavedAt + 1; s <= SavedAt + ContinueSteps; s++) Assert.Equal(StepOutcome.Applied, opt.Step(LearningRate, p, Gradient(s)));
        opt.SaveToFile(Fixture("v1-rotation-step7.ckpt"));
        File.WriteAllBytes(Fixture("v1-rotation-step7.params.bin"), Floats(p));
    }

    [Fact]
    public void A_committed_version_1_checkpoint_loads_and_continues_to_the_committed_state_bit_for_bit()
    {
        byte[] file = File.ReadAllBytes(Fixture("v1-rotation-step3.ckpt"));
        Assert.Equal("CLNSCKPT"u8.ToArray(), file[..8]);
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(file.AsSpan(8)));
        using var opt = new CountSketchAdam(Settings, Specs());
        opt.Load(new MemoryStream(file));
        Assert.Equal(SavedAt, opt.StepCount);
        var p = FromFloats(File.ReadAllBytes(Fixture("v1-rotation-step3.params.bin")));
        for (int s = SavedAt + 1; s <= SavedAt + ContinueSteps; s++) Assert.Equal(StepOutcome.Applied, opt.Step(LearningRate, p, Gradient(s)));

        var expectedParams = FromFloats(File.ReadAllBytes(Fixture("v1-rotation-step7.params.bin")));
        for (int t = 0; t < p.Length; t++) CheckpointTests.AssertBits(expectedParams[t], p[t], $"parameters {t}");
        using var ms = new MemoryStream();
        opt.Save(ms);
        Assert.Equal(File.ReadAllBytes(Fixture("v1-rotation-step7.ckpt")), ms.ToArray());
    }

    [Fact]
    public void The_committed_states_agree_with_the_scalar_reference()
    {
        // Seven reference steps from the same start and gradients: the committed step-3 and step-7 parameters and moments
        // are the algorithm's (at the tolerances of CountSketchAdamTests), not merely what some build once wrote.
        var reference = new ReferenceOptimizer(Settings, Specs());
        var q = InitialParameters();
        foreach (int s in Enumerable.Range(1, SavedAt + ContinueSteps))
        {
            reference.Step(LearningRate, q, Gradient(s));
            if (s != SavedAt && s != SavedAt + ContinueSteps) continue;
            var p = FromFloats(File.ReadAllBytes(Fixture($"v1-rotation-step{s}.params.bin")));
            using var loaded = new CountSketchAdam(Settings, Specs());
            loaded.LoadFromFile(Fixture($"v1-rotation-step{s}.ckpt"));
            Assert.Equal(s, loaded.StepCount);
            for (int t = 0; t < q.Length; t++)
            {
                bool dense = reference.Tensors[t].IsDense;
                AssertClose(q[t], p[t], 1e-5, 0.1, $"step {s} tensor {t} p");
                AssertClose(reference.SecondMoment(t), loaded.CopySecondMoment(t), dense ? 3e-5 : 1e-5, 1e-30, $"step {s} tensor {t} v");
                var mRef = reference.FirstMoment(t);
                AssertClose(mRef, loaded.CopyFirstMoment(t), 1e-5, 0.05 * mRef.Max(x => Math.Abs(x)), $"step {s} tensor {t} m");
            }
        }
    }
}
