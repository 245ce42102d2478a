using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests.Generated;

/// <summary>
/// A real generated device optimizer (DeviceRotation / DeviceUniversal on ILGPU's CPU accelerator) trained, saved,
/// loaded into a fresh device optimizer and continued: bit for bit the uninterrupted run (parameters, moments, counters).
/// </summary>
public class GeneratedDeviceCheckpointTests
{
    private const float LearningRate = 0.01f;

    private static StepOutcome Step(SketchedOptimizerBase opt, MemoryBuffer1D<float, Stride1D.Dense>[] p, MemoryBuffer1D<float, Stride1D.Dense>[] g)
        => opt switch
        {
            DeviceRotation.Optimizer r => r.Step(LearningRate, p[0].View, g[0].View, p[1].View, g[1].View, p[2].View, g[2].View),
            DeviceUniversal.Optimizer u => u.Step(LearningRate, p[0].View, g[0].View, p[1].View, g[1].View, p[2].View, g[2].View),
            _ => throw new InvalidOperationException(opt.GetType().Name),
        };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Device_optimizer_trained_saved_loaded_and_continued_is_bit_identical_to_an_uninterrupted_run(bool universal)
    {
        const int n = 3, m = 3;
        using var context = Context.Create(b => b.CPU());
        using var acc = context.CreateCPUAccelerator(0);
        SketchedOptimizerBase Create() => universal ? new DeviceUniversal.Optimizer(acc) : new DeviceRotation.Optimizer(acc);
        var specs = universal ? DeviceUniversal.Optimizer.TensorSpecs : DeviceRotation.Optimizer.TensorSpecs;
        var grads = Enumerable.Range(1, n + m).Select(s => Gradients(specs, 40, s)).ToArray();
        var buffers = new List<IDisposable>();
        MemoryBuffer1D<float, Stride1D.Dense>[] Upload(float[][] x) { var b = x.Select(a => acc.Allocate1D(a)).ToArray(); buffers.AddRange(b); return b; }
        try
        {
            // Uninterrupted: n + m steps.
            using var straight = Create();
            var p1 = Upload(Parameters(specs, 40));
            foreach (var g in grads) Assert.Equal(StepOutcome.Applied, Step(straight, p1, Upload(g)));

            // Interrupted: n steps, Save, a fresh device optimizer Loads, m more steps (the first one keeps going too).
            using var first = Create();
            var p2 = Upload(Parameters(specs, 40));
            for (int s = 0; s < n; s++) Assert.Equal(StepOutcome.Applied, Step(first, p2, Upload(grads[s])));
            using var saved = new MemoryStream();
            first.Save(saved);
            using var resumed = Create();
            resumed.Load(new MemoryStream(saved.ToArray()));
            Assert.Equal(n, resumed.StepCount);
            // What was loaded is bit for bit what was saved.
            CheckpointTests.AssertSame(CheckpointTests.Take(first), CheckpointTests.Take(resumed));
            var p3 = Upload(p2.Select(b => b.GetAsArray1D()).ToArray());
            for (int s = n; s < n + m; s++)
            {
                Assert.Equal(StepOutcome.Applied, Step(resumed, p3, Upload(grads[s])));
                Assert.Equal(StepOutcome.Applied, Step(first, p2, Upload(grads[s])));
            }

            var expected = CheckpointTests.Take(straight);
            if (!universal)
            {
                // Rotation device steps are order-deterministic (one thread per bucket, rows in order): bit for bit.
                CheckpointTests.AssertSame(expected, CheckpointTests.Take(resumed));
                CheckpointTests.AssertSame(expected, CheckpointTests.Take(first));
                AssertBitIdentical(p1.Select(b => b.GetAsArray1D()).ToArray(), p3.Select(b => b.GetAsArray1D()).ToArray());
                AssertBitIdentical(p1.Select(b => b.GetAsArray1D()).ToArray(), p2.Select(b => b.GetAsArray1D()).ToArray());
            }
            else
            {
                // Universal device phase 1 adds with float atomics, whose order (and so the last bits of a bucket sum) varies from
                // run to run (docs/reliability.md): after the bit-exact load above, the continued runs agree to float rounding.
                AssertClose(specs, p1.Select(b => b.GetAsArray1D()).ToArray(), p3.Select(b => b.GetAsArray1D()).ToArray(), 1e-5, "resumed");
                AssertClose(specs, expected.V, CheckpointTests.Take(resumed).V, 1e-5, "resumed v");
            }
            Assert.Equal(n + m, resumed.StepCount);
            Assert.Contains(expected.V, v => v.Any(x => x != 0));
        }
        finally { foreach (var b in buffers) b.Dispose(); }
    }

    [Fact]
    public void Generated_device_step_refuses_another_accelerators_buffers_and_changes_nothing()
    {
        using var context = Context.Create(b => b.CPU());
        using var acc = context.CreateCPUAccelerator(0);
        using var other = context.CreateCPUAccelerator(0);
        using var opt = new DeviceRotation.Optimizer(acc);
        var specs = DeviceRotation.Optimizer.TensorSpecs;
        var host = Parameters(specs, 41);
        var p = host.Select(a => acc.Allocate1D(a)).ToArray();
        var g = Gradients(specs, 41, 1).Select(a => acc.Allocate1D(a)).ToArray();
        using var foreign = other.Allocate1D(host[1]);
        try
        {
            Assert.Equal(StepOutcome.Applied, Step(opt, p, g));     // moments worth protecting
            var before = CheckpointTests.Take(opt);
            var pBefore = p.Select(b => b.GetAsArray1D()).ToArray();
            var e = Assert.Throws<ArgumentException>(() =>
                opt.Step(LearningRate, p[0].View, g[0].View, foreign.View, g[1].View, p[2].View, g[2].View));
            Assert.Contains("another accelerator", e.Message);
            Assert.Contains("'V'", e.Message);
            CheckpointTests.AssertSame(before, CheckpointTests.Take(opt));
            AssertBitIdentical(pBefore, p.Select(b => b.GetAsArray1D()).ToArray());
            CheckpointTests.AssertBits(host[1], foreign.GetAsArray1D(), "foreign parameters");
        }
        finally { foreach (var b in p.Concat(g)) b.Dispose(); }
    }
}
