using System.Buffers.Binary;
using ILGPU;
using ILGPU.Runtime;
using System.IO.Hashing;
using static Collins.Tests.ReferenceTestHelpers;

namespace Collins.Tests;

public class CheckpointTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "collins-ckpt-" + Guid.NewGuid().ToString("N"));

    public CheckpointTests() => Directory.CreateDirectory(_folder);

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
        GC.SuppressFinalize(this);
    }

    private static readonly OptimizerSettings Settings = new() { Ratio = 8, WeightDecay = 0.01, Seed = 11 };

    private static TensorSpec[] Specs(int w1Ratio = 0) => new[]
    {
        new TensorSpec("W1", new[] { 64, 64 }, Ratio: w1Ratio),          // sketched (4096 ≥ threshold)
        new TensorSpec("W2", new[] { 30, 33 }, Ratio: 4, Sketching: TensorSketching.Sketched),
        new TensorSpec("b", new[] { 16 }),                                // dense
    };

    private static CountSketchAdam Create(OptimizerSettings? settings = null, TensorSpec[]? specs = null)
        => new(settings ?? Settings, specs ?? Specs());

    /// <summary>Takes <paramref name="steps"/> steps with gradients drawn from <paramref name="rng"/>.</summary>
    private static void Train(CountSketchAdam opt, float[][] p, Random rng, int steps)
    {
        for (int s = 0; s < steps; s++)
            Assert.Equal(StepOutcome.Applied, opt.Step(1e-2f, p, opt.Tensors.Select(t => Normal(rng, t.Length)).ToArray()));
    }

    internal sealed record Snapshot(int StepCount, long Skipped, float[][] M, float[][] V);

    internal static Snapshot Take(SketchedOptimizerBase opt)
        => new(opt.StepCount, opt.SkippedSteps,
               Enumerable.Range(0, opt.Tensors.Count).Select(opt.CopyFirstMoment).ToArray(),
               Enumerable.Range(0, opt.Tensors.Count).Select(opt.CopySecondMoment).ToArray());

    /// <summary>Bit-for-bit equality of two snapshots (NaN-safe: compares the bits).</summary>
    internal static void AssertSame(Snapshot a, Snapshot b)
    {
        Assert.Equal(a.StepCount, b.StepCount);
        Assert.Equal(a.Skipped, b.Skipped);
        for (int i = 0; i < a.M.Length; i++)
        {
            AssertBits(a.M[i], b.M[i], $"tensor {i} m");
            AssertBits(a.V[i], b.V[i], $"tensor {i} v");
        }
    }

    internal static void AssertBits(float[] a, float[] b, string what)
    {
        Assert.Equal(a.Length, b.Length);
        for (int j = 0; j < a.Length; j++)
            if (BitConverter.SingleToInt32Bits(a[j]) != BitConverter.SingleToInt32Bits(b[j]))
                Assert.Fail($"{what}[{j}]: {a[j]:R} vs {b[j]:R}");
    }

    private static byte[] SaveBytes(SketchedOptimizerBase opt)
    {
        using var ms = new MemoryStream();
        opt.Save(ms);
        return ms.ToArray();
    }

    internal static void Reseal(byte[] file)
    {
        int body = file.Length - 8;
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(body), XxHash64.HashToUInt64(file.AsSpan(0, body)));
    }

    [Fact]
    public void Checkpoint_round_trip_is_bit_exact()
    {
        using var a = Create();
        var rng = new Random(1);
        var p = a.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        Train(a, p, rng, 3);
        a.NonFinitePolicy = NonFinitePolicy.Skip;
        var bad = a.Tensors.Select(t => new float[t.Length]).ToArray();
        bad[0][5] = float.NaN;
        Assert.Equal(StepOutcome.SkippedNonFinite, a.Step(1e-2f, p, bad));

        var bytes = SaveBytes(a);
        using var b = Create();
        b.Load(new MemoryStream(bytes));
        AssertSame(Take(a), Take(b));
        Assert.Equal(3, b.StepCount);
        Assert.Equal(1, b.SkippedSteps);
        // Saving the loaded optimizer gives the same bytes.
        Assert.Equal(bytes, SaveBytes(b));
        // The moments are not trivially zero.
        Assert.Contains(Take(b).V[0], x => x != 0);
    }

    [Theory]
    [InlineData(SketchLayout.Rotation, 0.9)]
    [InlineData(SketchLayout.Universal, 0.9)]
    [InlineData(SketchLayout.Rotation, 0.0)]
    public void Ten_steps_equal_five_save_load_five_bit_for_bit(SketchLayout layout, double beta1)
    {
        var settings = Settings with { Layout = layout, Beta1 = beta1 };
        var grads = new Random(2);
        var gradients = Enumerable.Range(0, 10).Select(_ => Specs().Select(s => Normal(grads, s.Shape.Aggregate(1, (x, y) => x * y))).ToArray()).ToArray();
        var p0 = Specs().Select(s => Uniform(new Random(3), s.Shape.Aggregate(1, (x, y) => x * y))).ToArray();

        using var straight = Create(settings);
        var p1 = Clone(p0);
        for (int s = 0; s < 10; s++) straight.Step(1e-2f, p1, gradients[s]);

        var p2 = Clone(p0);
        string path = Path.Combine(_folder, "resume.ckpt");
        using (var first = Create(settings))
        {
            for (int s = 0; s < 5; s++) first.Step(1e-2f, p2, gradients[s]);
            first.SaveToFile(path);
        }
        using var resumed = Create(settings);
        resumed.LoadFromFile(path);
        Assert.Equal(5, resumed.StepCount);
        for (int s = 5; s < 10; s++) resumed.Step(1e-2f, p2, gradients[s]);

        AssertSame(Take(straight), Take(resumed));
        for (int n = 0; n < p1.Length; n++)
            AssertBits(p1[n], p2[n], $"parameters {n}");
    }

    [Fact]
    public void Random_mutations_and_truncations_raise_only_documented_exceptions_and_change_nothing()
    {
        using var source = Create();
        var rng = new Random(4);
        var p = source.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        Train(source, p, rng, 2);
        byte[] valid = SaveBytes(source);

        // The target has different state, so a load that slipped through would show.
        using var target = Create();
        var q = target.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        Train(target, q, rng, 3);
        var before = Take(target);

        var fuzz = new Random(5);
        var kinds = new Dictionary<Type, int>();
        const int cases = 10_000;
        for (int c = 0; c < cases; c++)
        {
            byte[] bad;
            switch (c % 4)
            {
                case 0: // truncation
                    bad = valid[..fuzz.Next(valid.Length)];
                    break;
                case 1: // one flipped bit-pattern at a random place
                    bad = (byte[])valid.Clone();
                    bad[fuzz.Next(bad.Length)] ^= (byte)fuzz.Next(1, 256);
                    break;
                case 2: // several random bytes, mostly in the header and fingerprint
                    bad = (byte[])valid.Clone();
                    int hits = fuzz.Next(1, 6);
                    for (int h = 0; h < hits; h++)
                    {
                        int at = fuzz.Next(2) == 0 ? fuzz.Next(Math.Min(120, bad.Length)) : fuzz.Next(bad.Length);
                        bad[at] ^= (byte)fuzz.Next(1, 256);
                    }
                    break;
                default: // appended garbage
                    bad = valid.Concat(Enumerable.Range(0, fuzz.Next(1, 16)).Select(_ => (byte)fuzz.Next(256))).ToArray();
                    break;
            }
            var e = Assert.ThrowsAny<CheckpointException>(() => target.Load(new MemoryStream(bad)));
            Assert.True(e is CheckpointFormatException or CheckpointVersionException or CheckpointMismatchException, e.GetType().Name);
            kinds[e.GetType()] = kinds.GetValueOrDefault(e.GetType()) + 1;
            if (c % 500 == 0) AssertSame(before, Take(target));
        }
        AssertSame(before, Take(target));
        Assert.True(kinds.GetValueOrDefault(typeof(CheckpointFormatException)) > cases / 2);
        Assert.True(kinds.GetValueOrDefault(typeof(CheckpointVersionException)) > 0);
    }

    [Fact]
    public void Resealed_mutations_load_exactly_when_the_mutated_value_is_legal_and_then_change_only_that_value()
    {
        // One byte anywhere before the checksum is changed and the checksum recomputed, so the parser itself must judge
        // the damage. From the format (docs/reliability.md) only these bytes may be changed and still load:
        //   step counter (i32): when the new value is in [0, int.MaxValue − 1];
        //   skipped steps (i64): when the new value is ≥ 0;
        //   a first-moment float: when it is still finite; a second-moment float: when it is finite and ≥ 0.
        // Every other byte (magic, version, declared length, fingerprint, tensor records, moment counts) identifies the plan
        // or the layout, and any change to it must be refused with the target unchanged. A mutation that loads must change
        // exactly the mutated value.
        using var source = Create();
        var rng = new Random(6);
        var p = source.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        Train(source, p, rng, 2);
        byte[] valid = SaveBytes(source);
        var sourceState = Take(source);
        var layout = LayoutOf(source);
        Assert.Equal(valid.Length - 8, layout.ChecksumOffset);

        using var target = Create();
        var q = target.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        Train(target, q, new Random(70), 3);
        var before = Take(target);
        byte[] targetBytes = SaveBytes(target);

        var fuzz = new Random(7);
        int loaded = 0, rejected = 0, loadedCounters = 0, loadedMoments = 0, rejectedMoments = 0, rejectedCounters = 0;
        for (int c = 0; c < 6000; c++)
        {
            byte[] bad = (byte[])valid.Clone();
            // Half the cases anywhere in the body, half in the header, fingerprint, counters and first moment count.
            int at = c % 2 == 0 ? fuzz.Next(layout.ChecksumOffset) : fuzz.Next(layout.MOffset[0]);
            bad[at] ^= (byte)fuzz.Next(1, 256);
            Reseal(bad);

            // What the file now says, and whether that is legal.
            Snapshot? expected = null;
            bool isCounter = false, isMoment = false;
            if (at >= layout.StepOffset && at < layout.StepOffset + 4)
            {
                isCounter = true;
                int step = BinaryPrimitives.ReadInt32LittleEndian(bad.AsSpan(layout.StepOffset));
                if (step >= 0 && step < int.MaxValue) expected = sourceState with { StepCount = step };
            }
            else if (at >= layout.SkippedOffset && at < layout.SkippedOffset + 8)
            {
                isCounter = true;
                long skipped = BinaryPrimitives.ReadInt64LittleEndian(bad.AsSpan(layout.SkippedOffset));
                if (skipped >= 0) expected = sourceState with { Skipped = skipped };
            }
            else
            {
                for (int t = 0; t < source.Tensors.Count && !isMoment; t++)
                    foreach (var (offset, length, second) in new[] { (layout.MOffset[t], layout.MLength[t], false), (layout.VOffset[t], layout.VLength[t], true) })
                    {
                        if (at < offset || at >= offset + 4 * length) continue;
                        isMoment = true;
                        int j = (at - offset) / 4;
                        float x = BinaryPrimitives.ReadSingleLittleEndian(bad.AsSpan(offset + 4 * j));
                        if (float.IsFinite(x) && (!second || x >= 0))
                        {
                            var m = sourceState.M.Select(a => (float[])a.Clone()).ToArray();
                            var v = sourceState.V.Select(a => (float[])a.Clone()).ToArray();
                            (second ? v : m)[t][j] = x;
                            expected = sourceState with { M = m, V = v };
                        }
                        break;
                    }
            }

            try
            {
                target.Load(new MemoryStream(bad));
                if (expected is null) Assert.Fail($"byte {at} changed to {bad[at]:X2} (was {valid[at]:X2}) and the file still loaded");
                AssertSame(expected, Take(target));
                loaded++;
                if (isCounter) loadedCounters++; else loadedMoments++;
                target.Load(new MemoryStream(targetBytes));     // restore
            }
            catch (CheckpointException e)
            {
                if (expected is not null) Assert.Fail($"byte {at} changed to {bad[at]:X2} gives a legal file, refused: {e.Message}");
                Assert.True(e is CheckpointFormatException or CheckpointVersionException or CheckpointMismatchException, e.GetType().Name);
                rejected++;
                if (isCounter) rejectedCounters++;
                if (isMoment) rejectedMoments++;
                AssertSame(before, Take(target));   // every refusal leaves the optimizer as it was
            }
        }
        AssertSame(before, Take(target));
        // Both outcomes were exercised in both kinds of legal-value bytes.
        Assert.True(loadedCounters > 0 && rejectedCounters > 0 && loadedMoments > 0 && rejectedMoments > 0,
            $"loaded {loadedCounters} counter / {loadedMoments} moment mutations, rejected {rejectedCounters} / {rejectedMoments}");
        Assert.True(rejected > 2000, $"only {rejected} rejected, {loaded} loaded");
    }

    /// <summary>Byte offsets of a version-1 checkpoint's fields, computed from the format table in docs/reliability.md.</summary>
    internal sealed record FileLayout(int StepOffset, int SkippedOffset, int[] MCountOffset, int[] MOffset, int[] MLength, int[] VCountOffset, int[] VOffset, int[] VLength, int ChecksumOffset);

    internal static FileLayout LayoutOf(SketchedOptimizerBase opt)
    {
        int at = 20 + 2 + 8 + 8 + 8 + 4;
        foreach (var t in opt.Tensors) at += 4 + System.Text.Encoding.UTF8.GetByteCount(t.Name) + 4 + 4 * t.Shape.Count + 4 + 1 + 4 + 1;
        int step = at, skipped = at + 4;
        at += 12;
        int n = opt.Tensors.Count;
        var mc = new int[n]; var mo = new int[n]; var ml = new int[n]; var vc = new int[n]; var vo = new int[n]; var vl = new int[n];
        for (int i = 0; i < n; i++)
        {
            var t = opt.Tensors[i];
            mc[i] = at; mo[i] = at + 4; ml[i] = t.HasFirstMoment ? t.Buckets : 0; at = mo[i] + 4 * ml[i];
            vc[i] = at; vo[i] = at + 4; vl[i] = t.Buckets; at = vo[i] + 4 * vl[i];
        }
        return new FileLayout(step, skipped, mc, mo, ml, vc, vo, vl, at);
    }

    public static TheoryData<string, int, float> ImpossibleMoments() => new()
    {
        // moment ("m" or "v"), tensor index, value
        { "m", 0, float.NaN }, { "m", 1, float.PositiveInfinity }, { "m", 2, float.NegativeInfinity },
        { "v", 0, float.NaN }, { "v", 1, float.PositiveInfinity }, { "v", 2, float.NegativeInfinity },
        { "v", 0, -1f }, { "v", 1, -float.Epsilon }, { "v", 2, -3.4e38f },
    };

    [Theory]
    [MemberData(nameof(ImpossibleMoments))]
    public void A_sealed_checkpoint_with_an_impossible_moment_is_refused_and_changes_nothing(string moment, int tensor, float value)
    {
        using var source = Create();
        var rng = new Random(40);
        Train(source, source.Tensors.Select(t => Uniform(rng, t.Length)).ToArray(), rng, 2);
        byte[] bad = SaveBytes(source);
        var layout = LayoutOf(source);
        int count = moment == "m" ? layout.MLength[tensor] : layout.VLength[tensor];
        int index = count - 1 - tensor;   // not the first entry, so a check of only [0] would miss it
        int at = (moment == "m" ? layout.MOffset[tensor] : layout.VOffset[tensor]) + 4 * index;
        BinaryPrimitives.WriteSingleLittleEndian(bad.AsSpan(at), value);
        Reseal(bad);

        using var target = Create();
        Train(target, target.Tensors.Select(t => Uniform(rng, t.Length)).ToArray(), new Random(41), 3);
        var before = Take(target);
        var e = Assert.Throws<CheckpointFormatException>(() => target.Load(new MemoryStream(bad)));
        string name = source.Tensors[tensor].Name;
        Assert.Contains($"tensor '{name}'", e.Message);
        Assert.Contains(moment == "m" ? "first moment (m)" : "second moment (v)", e.Message);
        Assert.Contains($"[{index}]", e.Message);
        AssertSame(before, Take(target));
    }

    [Theory]
    [InlineData(int.MaxValue, 0L)]
    [InlineData(-1, 0L)]
    [InlineData(int.MinValue, 0L)]
    [InlineData(5, -1L)]
    [InlineData(5, long.MinValue)]
    public void A_sealed_checkpoint_with_impossible_counters_is_refused_and_changes_nothing(int step, long skipped)
    {
        using var source = Create();
        var rng = new Random(42);
        Train(source, source.Tensors.Select(t => Uniform(rng, t.Length)).ToArray(), rng, 2);
        byte[] bad = SaveBytes(source);
        var layout = LayoutOf(source);
        BinaryPrimitives.WriteInt32LittleEndian(bad.AsSpan(layout.StepOffset), step);
        BinaryPrimitives.WriteInt64LittleEndian(bad.AsSpan(layout.SkippedOffset), skipped);
        Reseal(bad);

        using var target = Create();
        Train(target, target.Tensors.Select(t => Uniform(rng, t.Length)).ToArray(), new Random(43), 3);
        var before = Take(target);
        var e = Assert.Throws<CheckpointFormatException>(() => target.Load(new MemoryStream(bad)));
        Assert.Contains(skipped < 0 ? skipped.ToString(System.Globalization.CultureInfo.InvariantCulture) : step.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
        AssertSame(before, Take(target));
    }

    [Fact]
    public void The_extreme_values_a_step_can_produce_still_load()
    {
        // The other side of the value checks: the largest steppable counter, a huge skipped count,
        // −0 and the extreme finite floats are values a writer can produce (or harmless ones) and must load.
        using var source = Create();
        var rng = new Random(44);
        Train(source, source.Tensors.Select(t => Uniform(rng, t.Length)).ToArray(), rng, 2);
        byte[] file = SaveBytes(source);
        var layout = LayoutOf(source);
        BinaryPrimitives.WriteInt32LittleEndian(file.AsSpan(layout.StepOffset), int.MaxValue - 1);
        BinaryPrimitives.WriteInt64LittleEndian(file.AsSpan(layout.SkippedOffset), long.MaxValue);
        BinaryPrimitives.WriteSingleLittleEndian(file.AsSpan(layout.MOffset[0]), -float.MaxValue);
        BinaryPrimitives.WriteSingleLittleEndian(file.AsSpan(layout.MOffset[0] + 4), float.Epsilon);
        BinaryPrimitives.WriteSingleLittleEndian(file.AsSpan(layout.VOffset[0]), float.MaxValue);
        BinaryPrimitives.WriteSingleLittleEndian(file.AsSpan(layout.VOffset[0] + 4), -0f);
        BinaryPrimitives.WriteSingleLittleEndian(file.AsSpan(layout.VOffset[2]), 0f);
        Reseal(file);

        using var target = Create();
        target.Load(new MemoryStream(file));
        Assert.Equal(int.MaxValue - 1, target.StepCount);
        Assert.Equal(long.MaxValue, target.SkippedSteps);
        var m0 = target.CopyFirstMoment(0); var v0 = target.CopySecondMoment(0);
        Assert.Equal(-float.MaxValue, m0[0]);
        Assert.Equal(float.Epsilon, m0[1]);
        Assert.Equal(float.MaxValue, v0[0]);
        Assert.Equal(BitConverter.SingleToInt32Bits(-0f), BitConverter.SingleToInt32Bits(v0[1]));

        // A refused step at the largest skipped count saturates instead of wrapping negative, so the file the optimizer then
        // writes still loads.
        var p = target.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        var bad = target.Tensors.Select(t => new float[t.Length]).ToArray();
        bad[0][0] = float.NaN;
        Assert.Equal(StepOutcome.SkippedNonFinite, target.Step(1e-3f, p, bad));
        Assert.Equal(long.MaxValue, target.SkippedSteps);
        using var again = Create();
        again.Load(new MemoryStream(SaveBytes(target)));
        Assert.Equal(long.MaxValue, again.SkippedSteps);
    }

    [Fact]
    public void SaveToFile_can_flush_the_folder_on_posix()
    {
        // The rename is made durable by an fsync of the folder; on Linux and macOS that call must really reach libc.
        string dir = Directory.CreateTempSubdirectory("collins-sync").FullName;
        try
        {
            bool flushed = DirectorySync.Flush(dir);
            if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) Assert.True(flushed);
            else Assert.False(flushed);
            Assert.False(DirectorySync.Flush(Path.Combine(dir, "missing")));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Fact]
    public void Crash_during_SaveToFile_leaves_the_old_file_loadable()
    {
        string path = Path.Combine(_folder, "model.ckpt");
        using var opt = Create();
        var rng = new Random(8);
        var p = opt.Tensors.Select(t => Uniform(rng, t.Length)).ToArray();
        Train(opt, p, rng, 2);
        opt.SaveToFile(path);
        var saved = Take(opt);
        byte[] oldBytes = File.ReadAllBytes(path);

        Train(opt, p, rng, 3);
        foreach (int failAfter in new[] { 0, 7, 100, oldBytes.Length / 2, oldBytes.Length - 1, -1 /* at Flush */ })
        {
            opt.CheckpointStreamWrapper = s => new CrashingStream(s, failAfter);
            var e = Assert.Throws<IOException>(() => opt.SaveToFile(path));
            Assert.Contains("simulated crash", e.Message);
            Assert.Equal(oldBytes, File.ReadAllBytes(path));
            using var fresh = Create();
            fresh.LoadFromFile(path);
            AssertSame(saved, Take(fresh));
        }
        // No temporary files are left behind.
        Assert.Equal(new[] { "model.ckpt" }, Directory.GetFiles(_folder).Select(Path.GetFileName).ToArray());

        // Without the crash, the new state replaces the old file.
        opt.CheckpointStreamWrapper = null;
        opt.SaveToFile(path);
        using var latest = Create();
        latest.LoadFromFile(path);
        AssertSame(Take(opt), Take(latest));
        Assert.Equal(5, latest.StepCount);
    }

    [Fact]
    public void Mismatched_plan_names_what_differs()
    {
        using var a = Create(specs: Specs(w1Ratio: 32));
        byte[] bytes = SaveBytes(a);
        using var b = Create(specs: Specs(w1Ratio: 16));
        var before = Take(b);
        var e = Assert.Throws<CheckpointMismatchException>(() => b.Load(new MemoryStream(bytes)));
        Assert.Contains("tensor 'W1': ratio 32 in file, 16 in optimizer", e.Message);
        Assert.Single(e.Differences);
        AssertSame(before, Take(b));

        using var c = Create(Settings with { Seed = 12, Beta2 = 0.99, Layout = SketchLayout.Universal });
        e = Assert.Throws<CheckpointMismatchException>(() => c.Load(new MemoryStream(SaveBytes(Create()))));
        Assert.Contains("seed 11 in file, 12 in optimizer", e.Message);
        Assert.Contains("Beta2 0.999 in file, 0.99 in optimizer", e.Message);
        Assert.Contains("layout Rotation in file, Universal in optimizer", e.Message);

        var other = new[] { new TensorSpec("W1", new[] { 64, 65 }), new TensorSpec("W2", new[] { 30, 33 }, Ratio: 4, Sketching: TensorSketching.Sketched) };
        using var d = Create(specs: other);
        e = Assert.Throws<CheckpointMismatchException>(() => d.Load(new MemoryStream(SaveBytes(Create()))));
        Assert.Contains("tensor 'W1': shape [64, 64] in file, [64, 65] in optimizer", e.Message);
        Assert.Contains("3 tensors in file, 2 in optimizer; not in optimizer: 'b'", e.Message);

        var denseFlag = new[] { Specs()[0], Specs()[1], new TensorSpec("b", new[] { 16 }, Sketching: TensorSketching.Sketched) };
        using var f = Create(specs: denseFlag);
        e = Assert.Throws<CheckpointMismatchException>(() => f.Load(new MemoryStream(SaveBytes(Create()))));
        Assert.Contains("tensor 'b': dense in file, sketched in optimizer", e.Message);
    }

    /// <summary>
    /// Before vectors were factored, a sketched vector under <see cref="SecondMomentEstimate.Factored"/> kept a Count-Sketch Mean estimate
    /// of v: k = ceil(n / Ratio) floats where the plan now keeps n + 1 (n row means and one column mean). Such a file has the same
    /// fingerprint (the same ratio, dense flag and buckets k), so it must be refused by the second-moment count, naming the tensor and both
    /// counts, and leave the optimizer as it was. The old file is this writer's output with the vector's v record cut back to k floats
    /// (offsets from the format table in docs/reliability.md), then resealed.
    /// </summary>
    [Fact]
    public void A_factored_checkpoint_written_before_vectors_were_factored_is_refused_naming_both_counts()
    {
        var settings = new OptimizerSettings { Ratio = 32, Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, Seed = 11 };
        const int n = 100;
        var specs = new[]
        {
            new TensorSpec("W", new[] { 64, 80 }),                                       // 5120 ≥ DenseThreshold: factored, 64 + 80 floats
            new TensorSpec("Bias", new[] { n }, Sketching: TensorSketching.Sketched),    // factored as n × 1: n + 1 floats
        };
        using var source = new CountSketchAdam(settings, specs);
        var rng = new Random(50);
        Train(source, source.Tensors.Select(t => Uniform(rng, t.Length)).ToArray(), rng, 3);
        int k = (n + settings.Ratio - 1) / settings.Ratio;
        var bias = source.Tensors[1];
        Assert.True(bias.IsFactored);
        Assert.Equal((n, 1, n + 1, k), (bias.FactorRows, bias.FactorColumns, bias.SecondMomentFloats, bias.Buckets));
        byte[] current = SaveBytes(source);

        // Offsets of the version-1 format: header 20, fingerprint 30, per tensor its name, rank, dims, ratio, dense, buckets, has-m;
        // then the counters (12) and per tensor an m record (count 0 with β1 = 0) and a v record (count + floats).
        Assert.Equal(1, BinaryPrimitives.ReadInt32LittleEndian(current.AsSpan(8)));
        int at = 20 + 30;
        foreach (var t in source.Tensors) at += 4 + System.Text.Encoding.UTF8.GetByteCount(t.Name) + 4 + 4 * t.Shape.Count + 4 + 1 + 4 + 1;
        at += 12;
        at += 4 + 4 + 4 * (64 + 80);   // W: m count 0, v count and R + C floats
        at += 4;                       // Bias: m count 0
        Assert.Equal(0, BinaryPrimitives.ReadInt32LittleEndian(current.AsSpan(at - 4)));
        Assert.Equal(n + 1, BinaryPrimitives.ReadInt32LittleEndian(current.AsSpan(at)));
        Assert.Equal(current.Length - 8, at + 4 + 4 * (n + 1));   // Bias's v record is the last before the checksum

        // The old file: Bias's v record holds k floats (bucket means of g², positive), the length field and the checksum follow.
        byte[] old = new byte[at + 4 + 4 * k + 8];
        current.AsSpan(0, at).CopyTo(old);
        BinaryPrimitives.WriteInt64LittleEndian(old.AsSpan(12), old.Length);
        BinaryPrimitives.WriteInt32LittleEndian(old.AsSpan(at), k);
        for (int j = 0; j < k; j++) BinaryPrimitives.WriteSingleLittleEndian(old.AsSpan(at + 4 + 4 * j), 0.25f * (j + 1));
        Reseal(old);

        using var target = new CountSketchAdam(settings, specs);
        Train(target, target.Tensors.Select(t => Uniform(rng, t.Length)).ToArray(), new Random(51), 2);
        var before = Take(target);
        var e = Assert.Throws<CheckpointFormatException>(() => target.Load(new MemoryStream(old)));
        Assert.Contains("tensor 'Bias'", e.Message);
        Assert.Contains($"has 0 and {k} moment values, expected 0 and {n + 1}", e.Message);
        AssertSame(before, Take(target));

        // The file as written loads (so it is the cut record that is refused), and gives the source's state.
        target.Load(new MemoryStream(current));
        AssertSame(Take(source), Take(target));
    }

    [Fact]
    public void Unknown_version_bad_magic_truncation_and_checksum_are_reported_specifically()
    {
        using var opt = Create();
        byte[] valid = SaveBytes(opt);

        byte[] v3 = (byte[])valid.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(v3.AsSpan(8), 3);
        Reseal(v3);
        var ve = Assert.Throws<CheckpointVersionException>(() => opt.Load(new MemoryStream(v3)));
        Assert.Equal(3, ve.FileVersion);
        Assert.Equal(2, ve.SupportedVersion);
        Assert.Contains("version 3", ve.Message);
        byte[] v0 = (byte[])valid.Clone();
        BinaryPrimitives.WriteInt32LittleEndian(v0.AsSpan(8), 0);
        Reseal(v0);
        Assert.Equal(0, Assert.Throws<CheckpointVersionException>(() => opt.Load(new MemoryStream(v0))).FileVersion);

        byte[] magic = (byte[])valid.Clone();
        magic[0] = (byte)'X';
        Assert.Contains("magic", Assert.Throws<CheckpointFormatException>(() => opt.Load(new MemoryStream(magic))).Message);

        Assert.Contains("truncated", Assert.Throws<CheckpointFormatException>(() => opt.Load(new MemoryStream(valid[..^1]))).Message);
        Assert.Contains("truncated", Assert.Throws<CheckpointFormatException>(() => opt.Load(new MemoryStream(valid[..12]))).Message);

        byte[] flipped = (byte[])valid.Clone();
        flipped[valid.Length / 2] ^= 0x10;
        Assert.Contains("checksum", Assert.Throws<CheckpointFormatException>(() => opt.Load(new MemoryStream(flipped))).Message);

        Assert.Throws<FileNotFoundException>(() => opt.LoadFromFile(Path.Combine(_folder, "missing.ckpt")));
    }

    [Fact]
    public void Device_state_round_trips_through_a_checkpoint()
    {
        using var context = ILGPU.Context.Create(b => ILGPU.Runtime.CPU.CPUContextExtensions.CPU(b));
        using var acc = ILGPU.Runtime.CPU.CPUContextExtensions.CreateCPUAccelerator(context, 0);
        var plans = Specs().Select(s => new TensorPlan(s, Settings)).ToArray();
        using var a = new DeviceStateOptimizer(Settings, plans, acc);
        a.Fill(seed: 9, steps: 4);
        using var b = new DeviceStateOptimizer(Settings, plans, acc);
        b.Load(new MemoryStream(SaveBytes(a)));
        AssertSame(Take(a), Take(b));
        Assert.Equal(4, b.StepCount);
        // CPU and device optimizers with the same plan share the format.
        using var cpu = Create();
        cpu.Load(new MemoryStream(SaveBytes(a)));
        AssertSame(Take(a), Take(cpu));
    }

    /// <summary>A base-class optimizer with device state, whose moments the test fills directly.</summary>
    private sealed class DeviceStateOptimizer : SketchedOptimizerBase
    {
        public DeviceStateOptimizer(OptimizerSettings s, IReadOnlyList<TensorPlan> plans, ILGPU.Runtime.Accelerator acc) : base(s, plans, acc) { }

        // It never steps: the checkpoint tests only move its state.
        protected override void LoadDeviceKernels() => throw new NotSupportedException();
        protected override void DeviceAccumulate(int tensor, ILGPU.ArrayView<float> gradient, ILGPU.ArrayView<int> flag) => throw new NotSupportedException();
        protected override void DeviceApply(int tensor, ILGPU.ArrayView<float> parameters, ILGPU.ArrayView<float> gradient, in StepScalars scalars) => throw new NotSupportedException();

        public void Fill(int seed, int steps)
        {
            var rng = new Random(seed);
            for (int i = 0; i < Tensors.Count; i++)
            {
                if (Tensors[i].HasFirstMoment) DeviceFirstMoments![i].CopyFromCPU(Uniform(rng, Tensors[i].Buckets));
                DeviceSecondMoments![i].CopyFromCPU(Uniform(rng, Tensors[i].Buckets, 0, 1));
            }
            StepCount = steps;
        }
    }

    /// <summary>Throws an IOException once <c>failAfter</c> bytes were written (−1: at Flush).</summary>
    private sealed class CrashingStream : Stream
    {
        private readonly Stream _inner;
        private readonly int _failAfter;
        private long _written;

        public CrashingStream(Stream inner, int failAfter) { _inner = inner; _failAfter = failAfter; }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_failAfter >= 0 && _written + buffer.Length > _failAfter)
            {
                int part = (int)(_failAfter - _written);
                _inner.Write(buffer[..part]);
                _inner.Flush();
                throw new IOException($"simulated crash after {_failAfter} bytes");
            }
            _inner.Write(buffer);
            _written += buffer.Length;
        }

        public override void Flush()
        {
            if (_failAfter < 0) throw new IOException("simulated crash at flush");
            _inner.Flush();
        }

        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => _written; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
