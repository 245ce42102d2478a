using Collins.Kernels;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests;

/// <summary>
/// The factored second moment and the quantised first moment on a device (ILGPU's CPU accelerator): the device kernels against
/// the CPU engine (float arithmetic in other orders, so to a relative tolerance, and codes to rare neighbouring values), generated
/// against run-time on the device (the same kernels: bit for bit), the non-finite guard, and checkpoints between device and CPU.
/// </summary>
[Trait("Category", "Kernels")]
public sealed class FactoredDeviceTests : IDisposable
{
    private static readonly OptimizerSettings Factored = Generated.FactoredModel.Optimizer.DefaultSettings;
    private static readonly OptimizerSettings Q8 = Generated.QuantizedModel.Optimizer.DefaultSettings;
    private static readonly OptimizerSettings Q4 = Generated.QuantizedModel.Q4.DefaultSettings;
    private static IReadOnlyList<TensorSpec> Specs => Generated.FactoredModel.Optimizer.TensorSpecs;

    private readonly Context _context = Context.Create(b => b.CPU());
    private readonly Accelerator _accelerator;
    private readonly List<MemoryBuffer1D<float, Stride1D.Dense>> _buffers = [];

    public FactoredDeviceTests() => _accelerator = _context.CreateCPUAccelerator(0);

    public void Dispose()
    {
        foreach (var b in _buffers) b.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }

    public static TheoryData<string> Variants() => new()
    {
        "Factored", "Factored clip", "Factored schedule", "Factored clip schedule",
        "Q8", "Q8 stochastic", "Q8 clip schedule", "Q4 nearest", "Q4",
    };

    private static OptimizerSettings Variant(string name) => name switch
    {
        "Factored" => Factored,
        "Factored clip" => Factored with { UpdateClipping = 0.5 },
        "Factored schedule" => Factored with { Beta2Schedule = 0.8 },
        "Factored clip schedule" => Factored with { UpdateClipping = 0.5, Beta2Schedule = 0.8 },
        "Q8" => Q8,
        "Q8 stochastic" => Q8 with { StochasticRounding = true },
        "Q8 clip schedule" => Q8 with { UpdateClipping = 0.5, Beta2Schedule = 0.8 },
        "Q4 nearest" => Q4 with { StochasticRounding = false, UpdateClipping = 0 },
        "Q4" => Q4,   // stochastic rounding, a block of 64, update clipping 1
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    private ArrayView<float>[] Upload(float[][] x)
        => x.Select(a => { var b = _accelerator.Allocate1D(a); _buffers.Add(b); return b.View.AsContiguous(); }).ToArray();

    private static float[][] Download(ArrayView<float>[] views) => views.Select(v => ArrayViewExtensions.GetAsArray1D<float>(v)).ToArray();

    /// <summary>
    /// Twenty steps on the CPU engine and on the device, from the same parameters and gradients. Codes: where the two put m on the
    /// two sides of a rounding boundary they store neighbouring codes and that entry parts ways; such entries must differ by one
    /// code when they first appear and be rare (under 1 %). Every other entry's p and m, and every v, agree to 1e-5 relative.
    /// </summary>
    [Theory]
    [MemberData(nameof(Variants))]
    public void The_device_follows_the_cpu_engine_for_twenty_steps(string variant)
    {
        var settings = Variant(variant);
        using var cpu = new CountSketchAdam(settings, Specs);
        using var device = new CountSketchAdam(settings, Specs, _accelerator);
        var pc = Parameters(Specs, 5);
        var pd = Upload(pc);
        var parted = Specs.Select(s => new bool[s.Shape.Aggregate(1, (a, b) => a * b)]).ToArray();
        int differences = 0;
        for (int step = 1; step <= 20; step++)
        {
            var g = Gradients(Specs, 5, step);
            float lr = 1e-2f / step;
            Assert.Equal(StepOutcome.Applied, cpu.Step(lr, pc, g));
            Assert.Equal(StepOutcome.Applied, device.Step(lr, pd, Upload(g)));
            for (int t = 0; t < Specs.Count; t++)
            {
                var plan = cpu.Tensors[t];
                if (!plan.IsQuantized) continue;
                var (ce, de) = (cpu.CopyFirstMomentCodes(t), device.CopyFirstMomentCodes(t));
                Assert.Equal(plan.FirstMomentCodeBytes, de.Length);
                differences += QuantizedMomentTests.RecordParting(plan, ce, de, parted[t], $"{variant} step {step}");
            }
        }
        var pdHost = Download(pd);
        for (int t = 0; t < Specs.Count; t++)
        {
            var plan = cpu.Tensors[t];
            int count = parted[t].Count(x => x);
            Assert.True(count <= parted[t].Length / 100, $"{variant}: {count} of {parted[t].Length} entries of {plan.Name} parted");
            var cm = plan.IsQuantized ? cpu.DequantizeFirstMoment(t) : null;
            var dm = plan.IsQuantized ? device.DequantizeFirstMoment(t) : null;
            for (int i = 0; i < plan.Length; i++)
            {
                if (parted[t][i]) continue;
                AssertRelative(pc[t][i], pdHost[t][i], 1f, $"{variant}: p {plan.Name}[{i}]");
                if (cm is not null) AssertRelative(cm[i], dm![i], 1e-3f, $"{variant}: m {plan.Name}[{i}]");
            }
            var (cv, dv) = (cpu.CopySecondMoment(t), device.CopySecondMoment(t));
            Assert.Equal(plan.SecondMomentFloats, dv.Length);
            for (int j = 0; j < cv.Length; j++) AssertRelative(cv[j], dv[j], 1e-12f, $"{variant}: v {plan.Name}[{j}]");
            Assert.Contains(dv, x => x > 0);
        }
        // The comparison compares something: the device moved the parameters, and a quantised m is not all zeros.
        Assert.NotEqual(Parameters(Specs, 5)[0], pdHost[0]);
        if (settings.FirstMoment != FirstMomentStorage.Sketch) Assert.Contains(device.DequantizeFirstMoment(0), x => x != 0);
    }

    /// <summary>
    /// |a − e| ≤ 1e-5·max(|e|, floor): relative, with a floor for values near 0 (parameters of order 1 that an update of order 1e-2
    /// carries through 0 keep the absolute error of their size: floor 1, as the engine-vs-reference tests; m floor 1e-3).
    /// </summary>
    private static void AssertRelative(float expected, float actual, float floor, string what)
    {
        double tol = 1e-5 * Math.Max(Math.Abs((double)expected), floor);
        Assert.True(Math.Abs((double)actual - expected) <= tol, $"{what}: expected {expected:R}, got {actual:R}");
    }

    public static TheoryData<string> GeneratedVariants() => new() { "Factored", "Q8", "Q4" };

    /// <summary>A generated optimizer and the run-time one with its settings load the same kernels on a device: bit for bit over ten steps.</summary>
    [Theory]
    [MemberData(nameof(GeneratedVariants))]
    public void Generated_and_run_time_optimizers_are_bit_identical_on_the_device(string variant)
    {
        using SketchedOptimizerBase generated = variant switch
        {
            "Factored" => new Generated.FactoredModel.Optimizer(_accelerator),
            "Q8" => new Generated.QuantizedModel.Optimizer(_accelerator),
            _ => new Generated.QuantizedModel.Q4(_accelerator),
        };
        var specs = variant switch
        {
            "Factored" => Generated.FactoredModel.Optimizer.TensorSpecs,
            "Q8" => Generated.QuantizedModel.Optimizer.TensorSpecs,
            _ => Generated.QuantizedModel.Q4.TensorSpecs,
        };
        using var runtime = new CountSketchAdam(generated.Settings, specs, _accelerator);
        var pg = Upload(Parameters(specs, 8));
        var pr = Upload(Parameters(specs, 8));
        for (int step = 1; step <= 10; step++)
        {
            var g = Upload(Gradients(specs, 8, step));
            Assert.Equal(StepOutcome.Applied, GeneratedStep(generated, 1e-2f, pg, g));
            Assert.Equal(StepOutcome.Applied, runtime.Step(1e-2f, pr, g));
        }
        AssertBitIdentical(Download(pr), Download(pg));
        for (int t = 0; t < specs.Count; t++)
        {
            AssertBitIdentical([runtime.CopyFirstMoment(t), runtime.CopySecondMoment(t)], [generated.CopyFirstMoment(t), generated.CopySecondMoment(t)]);
            Assert.Equal(runtime.CopyFirstMomentCodes(t), generated.CopyFirstMomentCodes(t));
        }
        Assert.NotEqual(Parameters(specs, 8)[1], Download(pg)[1]);
    }

    private static StepOutcome GeneratedStep(SketchedOptimizerBase o, float lr, ArrayView<float>[] p, ArrayView<float>[] g) => o switch
    {
        Generated.FactoredModel.Optimizer f => f.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        Generated.QuantizedModel.Optimizer q => q.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        Generated.QuantizedModel.Q4 q => q.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        _ => throw new ArgumentException(o.GetType().Name),
    };

    /// <summary>A NaN in a factored tensor's gradient (phase 1 raises its flag from a row and a column sum) changes nothing on the device.</summary>
    [Theory]
    [InlineData("Factored", 0)]
    [InlineData("Q4", 1)]
    public void A_non_finite_gradient_changes_nothing_on_the_device(string variant, int tensor)
    {
        using var o = new CountSketchAdam(Variant(variant), Specs, _accelerator);
        var p = Upload(Parameters(Specs, 3));
        for (int step = 1; step <= 2; step++) Assert.Equal(StepOutcome.Applied, o.Step(1e-2f, p, Upload(Gradients(Specs, 3, step))));
        var before = Snapshot(o, p);
        var bad = Gradients(Specs, 3, 3);
        bad[tensor][101] = float.NaN;
        Assert.Equal(StepOutcome.SkippedNonFinite, o.Step(1e-2f, p, Upload(bad)));
        var after = Snapshot(o, p);
        for (int k = 0; k < before.Length; k++) AssertBitIdentical(before[k], after[k]);
        Assert.Equal(2, o.StepCount);
        Assert.Equal(1, o.SkippedSteps);
        Assert.Equal(Specs[tensor].Name, o.LastNonFinite!.Value.TensorName);
        // An overflowing square (finite g) is refused too; then a finite gradient applies again.
        bad[tensor][101] = 3e19f;
        Assert.Equal(StepOutcome.SkippedNonFinite, o.Step(1e-2f, p, Upload(bad)));
        Assert.Equal(StepOutcome.Applied, o.Step(1e-2f, p, Upload(Gradients(Specs, 3, 3))));
        Assert.NotEqual(before[0][tensor], Snapshot(o, p)[0][tensor]);
    }

    private static float[][][] Snapshot(SketchedOptimizerBase o, ArrayView<float>[] p)
    {
        int n = o.Tensors.Count;
        return [Download(p), [.. Enumerable.Range(0, n).Select(o.CopyFirstMoment)], [.. Enumerable.Range(0, n).Select(o.CopySecondMoment)],
                [.. Enumerable.Range(0, n).Select(t => o.CopyFirstMomentCodes(t).Select(b => (float)b).ToArray())]];
    }

    /// <summary>
    /// A checkpoint saved from a device optimizer loads into a CPU one with the same state (codes, scales, v, counters), and the
    /// CPU one continues: its next steps follow the device's to the tolerance of the device-vs-CPU comparison; and back again,
    /// a CPU checkpoint loads into a device optimizer with the same state.
    /// </summary>
    [Theory]
    [InlineData("Factored")]
    [InlineData("Q8")]
    [InlineData("Q4")]
    public void A_device_checkpoint_loads_into_a_cpu_optimizer_and_continues(string variant)
    {
        var settings = Variant(variant);
        using var device = new CountSketchAdam(settings, Specs, _accelerator);
        var pd = Upload(Parameters(Specs, 4));
        for (int step = 1; step <= 3; step++) Assert.Equal(StepOutcome.Applied, device.Step(1e-2f, pd, Upload(Gradients(Specs, 4, step))));
        var stream = new MemoryStream();
        device.Save(stream);
        using var cpu = new CountSketchAdam(settings, Specs);
        stream.Position = 0;
        cpu.Load(stream);
        var pc = Download(pd);
        var saved = Snapshot(device, pd);
        var loaded = Snapshot(cpu, pd);
        for (int k = 1; k < saved.Length; k++) AssertBitIdentical(saved[k], loaded[k]);
        Assert.Equal(3, cpu.StepCount);
        if (settings.FirstMoment != FirstMomentStorage.Sketch) Assert.Contains(cpu.CopyFirstMomentCodes(0), b => b != 0);

        for (int step = 4; step <= 6; step++)
        {
            var g = Gradients(Specs, 4, step);
            Assert.Equal(StepOutcome.Applied, device.Step(1e-2f, pd, Upload(g)));
            Assert.Equal(StepOutcome.Applied, cpu.Step(1e-2f, pc, g));
        }
        Assert.Equal(6, cpu.StepCount);
        var pdHost = Download(pd);
        for (int t = 0; t < Specs.Count; t++)
        {
            // A quantised entry may part ways by one code (see the twenty-step test); over three steps from equal state few do.
            int far = 0;
            for (int i = 0; i < pc[t].Length; i++)
                if (Math.Abs(pc[t][i] - pdHost[t][i]) > 1e-5 * Math.Max(1, Math.Abs(pc[t][i]))) far++;
            Assert.True(far <= (settings.FirstMoment == FirstMomentStorage.Sketch ? 0 : pc[t].Length / 100), $"{variant}: {far} entries of {Specs[t].Name} differ");
        }

        // Back: the CPU optimizer's checkpoint into a fresh device optimizer.
        var back = new MemoryStream();
        cpu.Save(back);
        using var device2 = new CountSketchAdam(settings, Specs, _accelerator);
        back.Position = 0;
        device2.Load(back);
        var fromCpu = Snapshot(cpu, pd);
        var onDevice = Snapshot(device2, pd);
        for (int k = 1; k < fromCpu.Length; k++) AssertBitIdentical(fromCpu[k], onDevice[k]);
        Assert.Equal(StepOutcome.Applied, device2.Step(1e-2f, Upload(pc), Upload(Gradients(Specs, 4, 7))));
    }

    /// <summary>Device state is sized from the plan: R + C floats of v, the block scales and the code bytes of a quantised m.</summary>
    [Fact]
    public void Device_state_has_the_plan_sizes()
    {
        using var o = new CountSketchAdam(Q4, Specs, _accelerator);
        for (int t = 0; t < Specs.Count; t++)
        {
            var plan = o.Tensors[t];
            Assert.Equal(plan.FirstMomentFloats, o.CopyFirstMoment(t).Length);
            Assert.Equal(plan.SecondMomentFloats, o.CopySecondMoment(t).Length);
            Assert.Equal(plan.FirstMomentCodeBytes, o.CopyFirstMomentCodes(t).Length);
        }
        Assert.Equal(37 + 129, o.CopySecondMoment(0).Length);
        Assert.Equal((37 * 129 + 63) / 64 * 32, o.CopyFirstMomentCodes(0).Length);
    }
}
