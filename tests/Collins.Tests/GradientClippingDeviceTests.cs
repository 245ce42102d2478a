using Collins.Kernels;
using Collins.Tests.Generated;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests;

/// <summary>
/// MaxGradientNorm on a device (ILGPU's CPU accelerator in sequential mode, so that the Universal scatter's float atomics add in
/// index order and generated and run-time optimizers can be compared bit for bit): for every kind of tensor (the models of
/// <see cref="GradientClippingTests"/>, plus factored + Quantized4 with stochastic rounding), the device against the CPU engine with
/// the clip active on some steps and not others, ‖g‖ against its definition, generated against run-time on the device, a bound
/// never reached against no clipping, a refused step, and the device's Σ g² reduction on its own.
/// </summary>
[Trait("Category", "Kernels")]
public sealed class GradientClippingDeviceTests : IDisposable
{
    private const float Lr = 1e-2f;
    private const int Steps = 6;

    private readonly Context _context = Context.Create(b => b.CPU());
    private readonly Accelerator _accelerator;
    private readonly List<MemoryBuffer1D<float, Stride1D.Dense>> _buffers = [];

    public GradientClippingDeviceTests() => _accelerator = _context.CreateCPUAccelerator(0, CPUAcceleratorMode.Sequential);

    public void Dispose()
    {
        foreach (var b in _buffers) b.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }

    public static TheoryData<string> Kinds() => new() { "RotM", "RotNoM", "UniM", "UniNoM", "Factored", "Dense", "FactoredQ4" };

    private static IReadOnlyList<TensorSpec> Specs => ClippedModel.RotM.TensorSpecs;   // every kind declares the same tensors

    private SketchedOptimizerBase CreateGenerated(string kind) => kind switch
    {
        "RotM" => new ClippedModel.RotM(_accelerator),
        "RotNoM" => new ClippedModel.RotNoM(_accelerator),
        "UniM" => new ClippedModel.UniM(_accelerator),
        "UniNoM" => new ClippedModel.UniNoM(_accelerator),
        "Factored" => new ClippedModel.Factored(_accelerator),
        "Dense" => new ClippedModel.Dense(_accelerator),
        "FactoredQ4" => new ClippedModel.FactoredQ4(_accelerator),
        _ => throw new ArgumentException(kind),
    };

    private static StepOutcome Step(SketchedOptimizerBase o, float lr, ArrayView<float>[] p, ArrayView<float>[] g) => o switch
    {
        ClippedModel.RotM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        ClippedModel.RotNoM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        ClippedModel.UniM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        ClippedModel.UniNoM x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        ClippedModel.Factored x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        ClippedModel.Dense x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        ClippedModel.FactoredQ4 x => x.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        CountSketchAdam x => x.Step(lr, p, g),
        _ => throw new ArgumentException(o.GetType().Name),
    };

    private ArrayView<float>[] Upload(float[][] x)
        => x.Select(a => { var b = _accelerator.Allocate1D(a); _buffers.Add(b); return b.View.AsContiguous(); }).ToArray();

    private static float[][] Download(ArrayView<float>[] views) => views.Select(v => ArrayViewExtensions.GetAsArray1D<float>(v)).ToArray();

    private static float[][] Moments(SketchedOptimizerBase o, Func<int, float[]> copy) => Enumerable.Range(0, o.Tensors.Count).Select(copy).ToArray();

    /// <summary>|a − e| ≤ relative·max(|e|, floor·max|e| of the tensor) (signed sketch sums cancel: near 0 only the tensor's scale means anything).</summary>
    private static void AssertNear(string what, float[] expected, float[] actual, double relative, double floor)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Length == 0 ? 0 : expected.Max(x => Math.Abs((double)x));
        for (int i = 0; i < expected.Length; i++)
        {
            double e = expected[i], a = actual[i];
            if (!(Math.Abs(a - e) <= relative * Math.Max(Math.Abs(e), floor * scale)))
                Assert.Fail($"{what}[{i}]: expected {e:R}, got {a:R}");
        }
    }

    /// <summary>
    /// Six steps of the CPU engine, the generated optimizer on the device and the run-time one on the device, from the same
    /// parameters and gradients (‖g‖ about 34, 103 and 3.4 in turn against the bound 5: clipped, clipped, not clipped). Each step:
    /// ‖g‖ on the device equals the definition and the CPU's to rounding, and the generated and run-time device optimizers agree bit
    /// for bit (norm, parameters, moments, codes). At the end the device follows the CPU engine to float rounding (a quantised m's
    /// codes may part where the two put m on the two sides of a rounding boundary: rare, one code apart, those entries excluded).
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public void The_device_clips_as_the_cpu_engine_and_generated_is_bit_identical_to_run_time(string kind)
    {
        using var generated = CreateGenerated(kind);
        var settings = generated.Settings;
        Assert.Equal(5, settings.MaxGradientNorm);
        using var cpu = new CountSketchAdam(settings, Specs);
        using var runtime = new CountSketchAdam(settings, Specs, _accelerator);
        var pc = Parameters(Specs, 4);
        var pg = Upload(pc);
        var pr = Upload(pc);
        var parted = Specs.Select(s => new bool[s.Shape.Aggregate(1, (a, b) => a * b)]).ToArray();
        int clipped = 0;
        for (int step = 1; step <= Steps; step++)
        {
            var g = GradientClippingTests.StepGradients(Specs, 4, step);
            var gd = Upload(g);
            Assert.Equal(StepOutcome.Applied, cpu.Step(Lr, pc, g));
            Assert.Equal(StepOutcome.Applied, Step(generated, Lr, pg, gd));
            Assert.Equal(StepOutcome.Applied, Step(runtime, Lr, pr, gd));
            double norm = GradientClippingTests.Norm(g);
            if (norm > settings.MaxGradientNorm) clipped++;
            Assert.InRange(generated.LastGradientNorm, norm * (1 - 1e-6), norm * (1 + 1e-6));
            Assert.InRange(generated.LastGradientNorm, cpu.LastGradientNorm * (1 - 1e-6), cpu.LastGradientNorm * (1 + 1e-6));
            Assert.Equal(BitConverter.DoubleToInt64Bits(generated.LastGradientNorm), BitConverter.DoubleToInt64Bits(runtime.LastGradientNorm));
            AssertBitIdentical(Download(pg), Download(pr));
            AssertBitIdentical(Moments(generated, generated.CopyFirstMoment), Moments(runtime, runtime.CopyFirstMoment));
            AssertBitIdentical(Moments(generated, generated.CopySecondMoment), Moments(runtime, runtime.CopySecondMoment));
            for (int t = 0; t < Specs.Count; t++)
            {
                var plan = cpu.Tensors[t];
                if (!plan.IsQuantized) continue;
                Assert.Equal(generated.CopyFirstMomentCodes(t), runtime.CopyFirstMomentCodes(t));
                QuantizedMomentTests.RecordParting(plan, cpu.CopyFirstMomentCodes(t), generated.CopyFirstMomentCodes(t), parted[t], $"{kind} step {step}");
            }
        }
        Assert.Equal(4, clipped);   // both regimes ran: steps 1, 2, 4, 5 clipped, 3 and 6 not

        var pd = Download(pg);
        for (int t = 0; t < Specs.Count; t++)
        {
            var plan = cpu.Tensors[t];
            string what = $"{kind} {plan.Name}";
            Assert.True(parted[t].Count(x => x) <= parted[t].Length / 100, $"{what}: too many entries parted");
            var keep = Enumerable.Range(0, plan.Length).Where(i => !parted[t][i]).ToArray();
            AssertNear(what + " p", keep.Select(i => pc[t][i]).ToArray(), keep.Select(i => pd[t][i]).ToArray(), 1e-5, 1.0);
            if (plan.IsQuantized)
            {
                var (cm, dm) = (cpu.DequantizeFirstMoment(t), generated.DequantizeFirstMoment(t));
                AssertNear(what + " m", keep.Select(i => cm[i]).ToArray(), keep.Select(i => dm[i]).ToArray(), 1e-4, 1e-3);
            }
            // m is a signed EMA that cancels, and the CPU's dense step forms β1·m + (1 − β1)·s·g with one rounding (a fused
            // multiply-add) where the device rounds twice: near 0 only the tensor's scale is meaningful (floor 1e-2 of max |m|).
            else AssertNear(what + " m", cpu.CopyFirstMoment(t), generated.CopyFirstMoment(t), 1e-5, 1e-2);
            AssertNear(what + " v", cpu.CopySecondMoment(t), generated.CopySecondMoment(t), 3e-5, 1e-6);
        }
        Assert.NotEqual(Parameters(Specs, 4)[0], pd[0]);
    }

    /// <summary>
    /// The clip changes the device's result: the same steps without MaxGradientNorm end far from the clipped ones (so the comparison
    /// above could not pass if the device ignored s), while a bound never reached (s = 1 on every step) is bit-identical to no
    /// clipping: the kernels' extra multiplications by 1f are exact.
    /// </summary>
    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_bound_never_reached_is_bit_identical_to_no_clipping_and_an_active_one_is_not(string kind)
    {
        using var generated = CreateGenerated(kind);
        var settings = generated.Settings;
        using var off = new CountSketchAdam(settings with { MaxGradientNorm = 0 }, Specs, _accelerator);
        using var far = new CountSketchAdam(settings with { MaxGradientNorm = 1e30 }, Specs, _accelerator);
        var p0 = Parameters(Specs, 6);
        var (po, pf, pc) = (Upload(p0), Upload(p0), Upload(p0));
        for (int step = 1; step <= 3; step++)
        {
            var g = Upload(GradientClippingTests.StepGradients(Specs, 6, step));
            Assert.Equal(StepOutcome.Applied, Step(off, Lr, po, g));
            Assert.Equal(StepOutcome.Applied, Step(far, Lr, pf, g));
            Assert.Equal(StepOutcome.Applied, Step(generated, Lr, pc, g));
        }
        Assert.True(double.IsNaN(off.LastGradientNorm));
        Assert.False(double.IsNaN(far.LastGradientNorm));
        AssertBitIdentical(Download(po), Download(pf));
        AssertBitIdentical(Moments(off, off.CopyFirstMoment), Moments(far, far.CopyFirstMoment));
        AssertBitIdentical(Moments(off, off.CopySecondMoment), Moments(far, far.CopySecondMoment));
        // Every tensor moves differently once the clip is active (steps 1 and 2 have ‖g‖ ≈ 34 and 103 against 5).
        var (unclipped, clippedP) = (Download(po), Download(pc));
        var second = (Moments(off, off.CopySecondMoment), Moments(generated, generated.CopySecondMoment));
        for (int t = 0; t < Specs.Count; t++)
        {
            double diff = unclipped[t].Zip(clippedP[t], (a, b) => Math.Abs((double)a - b)).Max();
            double moved = unclipped[t].Zip(p0[t], (a, b) => Math.Abs((double)a - b)).Max();
            Assert.True(diff > 1e-3 * moved, $"{kind} {Specs[t].Name}: parameters with and without the clip differ by only {diff:E3} (moved {moved:E3})");
            double vOff = second.Item1[t].Max(), vClip = second.Item2[t].Max();
            Assert.True(vClip < 0.5 * vOff, $"{kind} {Specs[t].Name}: v with the clip ({vClip:E3}) should be far below v without ({vOff:E3})");
        }
    }

    [Theory]
    [InlineData("RotM", 2)]      // the dense tensor
    [InlineData("UniNoM", 0)]    // a sketched tensor
    [InlineData("Factored", 1)]  // a factored tensor
    public void A_non_finite_step_on_the_device_changes_nothing_and_keeps_the_norm(string kind, int badTensor)
    {
        using var opt = CreateGenerated(kind);
        using var twin = new CountSketchAdam(opt.Settings, Specs, _accelerator);
        var p0 = Parameters(Specs, 2);
        var (p, q) = (Upload(p0), Upload(p0));
        var g1 = Upload(GradientClippingTests.StepGradients(Specs, 2, 1));
        Assert.Equal(StepOutcome.Applied, Step(opt, Lr, p, g1));
        Assert.Equal(StepOutcome.Applied, Step(twin, Lr, q, g1));
        double norm = opt.LastGradientNorm;
        var before = (Download(p), Moments(opt, opt.CopyFirstMoment), Moments(opt, opt.CopySecondMoment));
        var badHost = GradientClippingTests.StepGradients(Specs, 2, 2);
        badHost[badTensor][7] = float.NaN;
        Assert.Equal(StepOutcome.SkippedNonFinite, Step(opt, Lr, p, Upload(badHost)));
        AssertBitIdentical(before.Item1, Download(p));
        AssertBitIdentical(before.Item2, Moments(opt, opt.CopyFirstMoment));
        AssertBitIdentical(before.Item3, Moments(opt, opt.CopySecondMoment));
        Assert.Equal(BitConverter.DoubleToInt64Bits(norm), BitConverter.DoubleToInt64Bits(opt.LastGradientNorm));
        Assert.Equal((1, 1L, badTensor), (opt.StepCount, opt.SkippedSteps, opt.LastNonFinite!.Value.TensorIndex));
        var g3 = Upload(GradientClippingTests.StepGradients(Specs, 2, 3));
        Assert.Equal(StepOutcome.Applied, Step(opt, Lr, p, g3));
        Assert.Equal(StepOutcome.Applied, Step(twin, Lr, q, g3));
        AssertBitIdentical(Download(q), Download(p));
        Assert.Equal(BitConverter.DoubleToInt64Bits(twin.LastGradientNorm), BitConverter.DoubleToInt64Bits(opt.LastGradientNorm));
    }

    /// <summary>
    /// Lengths of one level, of two, and of three (past 256² values), with squares and without; the workspace is the partials of
    /// every level but the last: ceil(n / 256), then ceil of that / 256 while more than 256 remain (70 001: 274 + 2).
    /// </summary>
    [Theory]
    [InlineData(1, true, 0)]
    [InlineData(256, false, 0)]
    [InlineData(257, true, 2)]
    [InlineData(3000, false, 12)]
    [InlineData(70_001, true, 276)]
    public void The_device_reduction_sums_every_value_in_double_deterministically(int length, bool square, int workspace)
    {
        var values = GeneratedTestSupport.RandomArray(length, length, 3f);
        using var buffer = _accelerator.Allocate1D(values);
        using var norm = new DeviceGradientNorm(_accelerator, 3, length);
        norm.Reduce(1, buffer.View, square);
        norm.Reduce(2, buffer.View, square);
        norm.Reduce(0, buffer.View.SubView(0, 1), square);
        var sums = new double[3];
        norm.Read(sums);
        double expected = 0;
        foreach (float x in values) expected += square ? (double)(x * x) : x;
        double magnitude = values.Sum(x => Math.Abs(square ? (double)(x * x) : x));
        Assert.InRange(sums[1], expected - 1e-13 * magnitude, expected + 1e-13 * magnitude);
        Assert.Equal(BitConverter.DoubleToInt64Bits(sums[1]), BitConverter.DoubleToInt64Bits(sums[2]));
        Assert.Equal(square ? (double)(values[0] * values[0]) : values[0], sums[0]);
        Assert.Equal(workspace, DeviceGradientNorm.Workspace(length));
    }
}
