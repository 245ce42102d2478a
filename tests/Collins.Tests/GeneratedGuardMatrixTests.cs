using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests.Generated;

/// <summary>
/// The step guard of generated optimizers, as a matrix: β1 0 / 0.9 × Rotation / Universal × NaN / ±Inf / finite values whose
/// square overflows float × sketched / dense / large (non-temporal Rotation phase 1) tensors, on the CPU and on ILGPU's CPU
/// accelerator. Every refused step is compared bit for bit with a twin that never saw it; the refused step names the tensor.
/// Also: aliasing refusal for more than 24 tensors and on the device, the step-counter limit and MaxThreads validation.
/// </summary>
public class GeneratedGuardMatrixTests
{
    private const float Lr = 1e-2f;

    /// <summary>The bad values: non-finite, and finite ones whose square (and so (1 − β2)·g² in v) overflows float.</summary>
    private static readonly float[] BadValues = { float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e21f, -3e38f, 2e19f };

    public static TheoryData<string> CpuVariants() => new() { "RotationM", "RotationNoM", "UniversalM", "UniversalNoM" };

    private static SketchedOptimizerBase CreateCpu(string variant) => variant switch
    {
        "RotationM" => new GuardMatrix.RotationM(),
        "RotationNoM" => new GuardMatrix.RotationNoM(),
        "UniversalM" => new GuardMatrix.UniversalM(),
        "UniversalNoM" => new GuardMatrix.UniversalNoM(),
        _ => throw new ArgumentException(variant),
    };

    private static StepOutcome StepCpu(SketchedOptimizerBase opt, float[][] p, float[][] g) => opt switch
    {
        GuardMatrix.RotationM o => o.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        GuardMatrix.RotationNoM o => o.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        GuardMatrix.UniversalM o => o.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        GuardMatrix.UniversalNoM o => o.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        _ => throw new ArgumentException(opt.GetType().Name),
    };

    [Theory]
    [MemberData(nameof(CpuVariants))]
    public void Cpu_refused_steps_change_nothing_and_name_the_tensor(string variant)
    {
        using var opt = CreateCpu(variant);
        using var twin = CreateCpu(variant);
        var specs = opt.Tensors.Select(t => new TensorSpec(t.Name, new[] { t.Length })).ToArray();
        Assert.True(opt.Tensors[2].Length >= 1 << 20 && !opt.Tensors[2].IsDense, "the large tensor takes the non-temporal path");
        Assert.True(opt.Tensors[1].IsDense && !opt.Tensors[0].IsDense);
        var p = Parameters(specs, 3);
        var pTwin = Clone(p);
        var g1 = Gradients(specs, 3, 1);
        Assert.Equal(StepOutcome.Applied, StepCpu(opt, p, g1));
        Assert.Equal(StepOutcome.Applied, StepCpu(twin, pTwin, g1));

        long skipped = 0;
        for (int tensor = 0; tensor < 3; tensor++)
        {
            foreach (float badValue in BadValues)
            {
                foreach (var policy in new[] { NonFinitePolicy.Skip, NonFinitePolicy.Throw })
                {
                    opt.NonFinitePolicy = policy;
                    var bad = Gradients(specs, 3, 2);
                    int index = (int)((uint)(tensor * 7919 + BitConverter.SingleToInt32Bits(badValue)) % (uint)bad[tensor].Length);
                    bad[tensor][index] = badValue;
                    string what = $"{variant}, tensor {opt.Tensors[tensor].Name}, g[{index}] = {badValue:R}, {policy}";
                    if (policy == NonFinitePolicy.Skip)
                    {
                        Assert.Equal(StepOutcome.SkippedNonFinite, StepCpu(opt, p, bad));
                        skipped++;
                    }
                    else
                    {
                        var e = Assert.Throws<NonFiniteGradientException>(() => StepCpu(opt, p, bad));
                        Assert.Contains($"tensor '{opt.Tensors[tensor].Name}' (index {tensor}): gradient entry {index}", e.Message);
                    }
                    Assert.Equal(new NonFiniteGradient(tensor, opt.Tensors[tensor].Name, index, 2), opt.LastNonFinite);
                    AssertSameState(twin, pTwin, opt, p, skipped, what);
                }
            }
        }

        // A bucket whose entries are each finite when squared but whose Σg² overflows: refused too, with no single entry to name.
        opt.NonFinitePolicy = NonFinitePolicy.Skip;
        var overflow = Gradients(specs, 3, 2);
        for (int i = 0; i < overflow[0].Length; i++) overflow[0][i] = 1.5e19f;   // g² = 2.25e38 finite, the sum of 8 is not
        Assert.Equal(StepOutcome.SkippedNonFinite, StepCpu(opt, p, overflow));
        Assert.Equal(new NonFiniteGradient(0, opt.Tensors[0].Name, -1, 2), opt.LastNonFinite);
        AssertSameState(twin, pTwin, opt, p, ++skipped, variant + ", bucket sum overflow");

        // After all that, the next good step is exactly the twin's.
        var g2 = Gradients(specs, 3, 3);
        Assert.Equal(StepOutcome.Applied, StepCpu(opt, p, g2));
        Assert.Equal(StepOutcome.Applied, StepCpu(twin, pTwin, g2));
        AssertSameState(twin, pTwin, opt, p, skipped, variant + ", after recovery");
        for (int t = 0; t < 3; t++)
        {
            Assert.All(opt.CopySecondMoment(t), x => Assert.True(float.IsFinite(x) && x >= 0));
            Assert.All(p[t], x => Assert.True(float.IsFinite(x)));
        }
    }

    private static void AssertSameState(SketchedOptimizerBase twin, float[][] pTwin, SketchedOptimizerBase opt, float[][] p, long skipped, string what)
    {
        Assert.Equal(twin.StepCount, opt.StepCount);
        Assert.Equal(skipped, opt.SkippedSteps);
        for (int t = 0; t < p.Length; t++)
        {
            AssertBits(pTwin[t], p[t], what + ": parameters of " + opt.Tensors[t].Name);
            AssertBits(twin.CopyFirstMoment(t), opt.CopyFirstMoment(t), what + ": m of " + opt.Tensors[t].Name);
            AssertBits(twin.CopySecondMoment(t), opt.CopySecondMoment(t), what + ": v of " + opt.Tensors[t].Name);
        }
    }

    private static void AssertBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
                Assert.Fail($"{what}[{i}]: {expected[i]:R} vs {actual[i]:R}");
    }

    // ------------------------------------------------------------------ device

    public static TheoryData<bool, bool> DeviceVariants() => new() { { false, false }, { false, true }, { true, false }, { true, true } };

    private static SketchedOptimizerBase CreateDevice(bool universal, bool noMomentum, Accelerator a) => (universal, noMomentum) switch
    {
        (false, false) => new DeviceRotation.Optimizer(a),
        (false, true) => new DeviceRotation.MeanNoMomentum(a),
        (true, false) => new DeviceUniversal.Optimizer(a),
        (true, true) => new DeviceUniversal.MeanNoMomentum(a),
    };

    private static StepOutcome StepDevice(SketchedOptimizerBase opt, ArrayView<float>[] p, ArrayView<float>[] g) => opt switch
    {
        DeviceRotation.Optimizer o => o.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        DeviceRotation.MeanNoMomentum o => o.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        DeviceUniversal.Optimizer o => o.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        DeviceUniversal.MeanNoMomentum o => o.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        _ => throw new ArgumentException(opt.GetType().Name),
    };

    [Theory]
    [MemberData(nameof(DeviceVariants))]
    public void Device_refused_steps_change_nothing_and_name_the_tensor(bool universal, bool noMomentum)
    {
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        using var opt = CreateDevice(universal, noMomentum, accelerator);
        using var twin = CreateDevice(universal, noMomentum, accelerator);
        var specs = opt.Tensors.Select(t => new TensorSpec(t.Name, new[] { t.Length })).ToArray();
        int dense = opt.Tensors.Select((t, i) => (t, i)).First(x => x.t.IsDense).i;
        var host = Parameters(specs, 9);
        var buffers = new List<MemoryBuffer1D<float, Stride1D.Dense>>();
        ArrayView<float>[] Upload(float[][] a) => a.Select(x => { var b = accelerator.Allocate1D(x); buffers.Add(b); return b.View.AsContiguous(); }).ToArray();
        try
        {
            var p = Upload(host);
            var pTwin = Upload(host);
            var g1 = Upload(Gradients(specs, 9, 1));
            Assert.Equal(StepOutcome.Applied, StepDevice(opt, p, g1));
            Assert.Equal(StepOutcome.Applied, StepDevice(twin, pTwin, g1));

            // The state every refused step must leave bit-identical (taken from the optimizer itself: Universal device phase 1
            // adds with float atomics, so two optimizers agree only to the last bit, while one optimizer's refused step must
            // change no bit at all).
            var snapshot = Snapshot(opt, p);
            long skipped = 0;
            foreach (int tensor in new[] { 0, dense })
            {
                foreach (float badValue in new[] { float.NaN, float.PositiveInfinity, float.NegativeInfinity, 1e21f })
                {
                    var badHost = Gradients(specs, 9, 2);
                    badHost[tensor][badHost[tensor].Length / 3] = badValue;
                    var bad = Upload(badHost);
                    Assert.Equal(StepOutcome.SkippedNonFinite, StepDevice(opt, p, bad));
                    skipped++;
                    Assert.Equal(new NonFiniteGradient(tensor, opt.Tensors[tensor].Name, -1, 2), opt.LastNonFinite);
                    string what = $"tensor {tensor}, {badValue:R}";
                    Assert.Equal(1, opt.StepCount);
                    Assert.Equal(skipped, opt.SkippedSteps);
                    var now = Snapshot(opt, p);
                    for (int t = 0; t < p.Length; t++)
                        for (int k = 0; k < 3; k++)
                            AssertBits(snapshot[t][k], now[t][k], what + ": " + "pmv"[k] + " of " + opt.Tensors[t].Name);
                }
            }

            // The next good step is exactly the twin's where the device step is deterministic (Rotation: no atomics).
            var g2 = Upload(Gradients(specs, 9, 3));
            Assert.Equal(StepOutcome.Applied, StepDevice(opt, p, g2));
            Assert.Equal(StepOutcome.Applied, StepDevice(twin, pTwin, g2));
            if (!universal) AssertSameDeviceState(twin, pTwin, opt, p, skipped, "after recovery");
        }
        finally
        {
            foreach (var b in buffers) b.Dispose();
        }
    }

    private static float[][][] Snapshot(SketchedOptimizerBase opt, ArrayView<float>[] p)
        => Enumerable.Range(0, p.Length).Select(t => new[] { Read(p[t]), opt.CopyFirstMoment(t), opt.CopySecondMoment(t) }).ToArray();

    private static void AssertSameDeviceState(SketchedOptimizerBase twin, ArrayView<float>[] pTwin, SketchedOptimizerBase opt, ArrayView<float>[] p, long skipped, string what)
    {
        Assert.Equal(twin.StepCount, opt.StepCount);
        Assert.Equal(skipped, opt.SkippedSteps);
        for (int t = 0; t < p.Length; t++)
        {
            AssertBits(Read(pTwin[t]), Read(p[t]), what + ": parameters of " + opt.Tensors[t].Name);
            AssertBits(twin.CopyFirstMoment(t), opt.CopyFirstMoment(t), what + ": m of " + opt.Tensors[t].Name);
            AssertBits(twin.CopySecondMoment(t), opt.CopySecondMoment(t), what + ": v of " + opt.Tensors[t].Name);
        }
    }

    private static float[] Read(ArrayView<float> view) => ArrayViewExtensions.GetAsArray1D<float>(view);

    [Fact]
    public void Device_step_refuses_aliased_views_and_changes_nothing()
    {
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        using var opt = new DeviceRotation.Optimizer(accelerator);
        var specs = DeviceRotation.Optimizer.TensorSpecs;
        var host = Parameters(specs, 4);
        var grads = Gradients(specs, 4, 1);
        var pb = host.Select(a => accelerator.Allocate1D(a)).ToArray();
        var gb = grads.Select(a => accelerator.Allocate1D(a)).ToArray();
        // One buffer holding W's parameters followed by V's, to alias by sub-views.
        using var shared = accelerator.Allocate1D<float>(3001 + 520);
        try
        {
            var p = pb.Select(b => b.View.AsContiguous()).ToArray();
            var g = gb.Select(b => b.View.AsContiguous()).ToArray();

            void Refused(ArrayView<float>[] pp, ArrayView<float>[] gg, string message)
            {
                var e = Assert.Throws<ArgumentException>(() => StepDevice(opt, pp, gg));
                Assert.Contains(message, e.Message);
                Assert.Equal(0, opt.StepCount);
                for (int t = 0; t < host.Length; t++)
                {
                    AssertBits(host[t], pb[t].GetAsArray1D(), "parameters of " + specs[t].Name);
                    Assert.All(opt.CopySecondMoment(t), x => Assert.Equal(0f, x));
                }
            }

            // The same view as a tensor's parameters and gradient (the bug: this returned Applied).
            Refused(p, new[] { p[0], g[1], g[2] }, "Tensor 'W': the parameter and gradient buffers overlap in memory.");
            // A gradient that aliases another tensor's parameters.
            Refused(p, new[] { g[0], g[1], p[0].SubView(0, 50) }, "Tensor 'W': the parameter buffer overlaps the gradient buffer of tensor 'B'.");
            // Two tensors' parameters overlapping by one element inside one buffer.
            var sharedView = shared.View.AsContiguous();
            Refused(new[] { sharedView.SubView(0, 3001), sharedView.SubView(3000, 520), p[2] }, g,
                    "Tensor 'W': the parameter buffer overlaps the parameter buffer of tensor 'V'.");
            // Adjacent, not overlapping: accepted.
            shared.View.SubView(0, 3001).CopyFromCPU(host[0]);
            shared.View.SubView(3001, 520).CopyFromCPU(host[1]);
            Assert.Equal(StepOutcome.Applied, StepDevice(opt, new[] { sharedView.SubView(0, 3001), sharedView.SubView(3001, 520), p[2] }, g));
        }
        finally
        {
            foreach (var b in pb.Concat(gb)) b.Dispose();
        }
    }

    // ------------------------------------------------------------------ more than 24 tensors

    private static StepOutcome StepMany(ManyTensors.Optimizer o, Memory<float>[] m, float[][] g)
        => o.Step(Lr, m[0].Span, g[0], m[1].Span, g[1], m[2].Span, g[2], m[3].Span, g[3], m[4].Span, g[4], m[5].Span, g[5],
                  m[6].Span, g[6], m[7].Span, g[7], m[8].Span, g[8], m[9].Span, g[9], m[10].Span, g[10], m[11].Span, g[11],
                  m[12].Span, g[12], m[13].Span, g[13], m[14].Span, g[14], m[15].Span, g[15], m[16].Span, g[16], m[17].Span, g[17],
                  m[18].Span, g[18], m[19].Span, g[19], m[20].Span, g[20], m[21].Span, g[21], m[22].Span, g[22], m[23].Span, g[23],
                  m[24].Span, g[24], m[25].Span, g[25]);

    [Fact]
    public void Step_with_26_tensors_refuses_aliasing_across_any_pair()
    {
        using var opt = new ManyTensors.Optimizer();
        var specs = ManyTensors.Optimizer.TensorSpecs;
        Assert.Equal(26, specs.Count);
        var p = Parameters(specs, 2);
        var g = Gradients(specs, 2, 1);
        var before = Clone(p);

        void Refused(Memory<float>[] pp, float[][] gg, string message)
        {
            var e = Assert.Throws<ArgumentException>(() => StepMany(opt, pp, gg));
            Assert.Contains(message, e.Message);
            Assert.Equal(0, opt.StepCount);
            for (int t = 0; t < 26; t++) AssertBits(before[t], p[t], "parameters of " + specs[t].Name);
        }

        Memory<float>[] Spans(float[][] a) => a.Select(x => new Memory<float>(x)).ToArray();

        // The last tensor's parameters are the first tensor's gradient (the pair the generated code skipped above 24 tensors).
        var g1 = Clone(g);
        g1[0] = new float[100];
        var pp = Spans(p);
        pp[24] = g1[0];
        Refused(pp, g1, "Tensor 'T24': the parameter buffer overlaps the gradient buffer of tensor 'T00'.");
        // Two tensors' parameters overlapping inside one array.
        var big = new float[200];
        pp = Spans(p);
        pp[0] = big.AsMemory(0, 100);
        pp[22] = big.AsMemory(99, 100);
        Refused(pp, g, "Tensor 'T00': the parameter buffer overlaps the parameter buffer of tensor 'T22'.");
        // A tensor's own parameters and gradient.
        pp = Spans(p);
        var g2 = Clone(g);
        g2[25] = p[25];
        Refused(pp, g2, "Tensor 'T25': the parameter and gradient buffers overlap in memory.");
        // Gradients may share memory (they are only read): accepted.
        var g3 = Clone(g);
        g3[3] = g3[1];
        Assert.Equal(StepOutcome.Applied, StepMany(opt, Spans(p), g3));
    }

    // ------------------------------------------------------------------ counters and settings

    [Fact]
    public void Step_at_the_step_counter_limit_throws_before_anything_is_written()
    {
        using var opt = new DeviceRotation.Optimizer();
        var specs = DeviceRotation.Optimizer.TensorSpecs;
        var p = Parameters(specs, 6);
        var g = Gradients(specs, 6, 1);
        Assert.Equal(StepOutcome.Applied, opt.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]));
        var before = Clone(p);
        var v = opt.CopySecondMoment(0);
        // Reach the limit as a very long run would (the setter is the base's own; checkpoints refuse the value, see CheckpointTests).
        typeof(SketchedOptimizerBase).GetProperty(nameof(SketchedOptimizerBase.StepCount))!.SetValue(opt, int.MaxValue);
        var e = Assert.Throws<InvalidOperationException>(() => opt.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]));
        Assert.Contains("step counter is at its limit", e.Message);
        Assert.Equal(int.MaxValue, opt.StepCount);
        for (int t = 0; t < p.Length; t++) AssertBits(before[t], p[t], "parameters of " + specs[t].Name);
        AssertBits(v, opt.CopySecondMoment(0), "v of W");
        // The guard was not left taken: with the counter back below the limit the next step applies (a leaked guard would
        // refuse it as a concurrent step).
        typeof(SketchedOptimizerBase).GetProperty(nameof(SketchedOptimizerBase.StepCount))!.SetValue(opt, 1);
        Assert.Equal(StepOutcome.Applied, opt.Step(Lr, p[0], g[0], p[1], g[1], p[2], g[2]));
        Assert.Equal(2, opt.StepCount);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(int.MinValue)]
    public void MaxThreads_below_one_is_refused(int value)
    {
        using var opt = new DeviceRotation.Optimizer();
        opt.MaxThreads = 3;
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => opt.MaxThreads = value);
        Assert.Contains("MaxThreads must be at least 1", e.Message);
        Assert.Equal(3, opt.MaxThreads);
        using var runtime = new CountSketchAdam(new OptimizerSettings(), new[] { new TensorSpec("w", new[] { 10 }) });
        Assert.Throws<ArgumentOutOfRangeException>(() => runtime.MaxThreads = value);
    }
}
