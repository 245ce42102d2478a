using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests.Generated;

/// <summary>
/// On ILGPU's CPU accelerator, a generated device optimizer (rows unrolled as literals) and the run-time
/// <see cref="CountSketchAdam"/> device path (generic kernels, run-time constants) with the same settings compute with the
/// same operation order: Rotation and dense tensors are bit-identical over 20 steps for every estimate × β1. Universal
/// tensors are scattered with float atomics, whose order a device does not fix: on the default CPU accelerator (several
/// threads) they agree to float rounding, and on ILGPU's sequential CPU mode, where the atomics run in index order, they are
/// bit-identical too.
/// </summary>
public class GeneratedVsRuntimeDeviceTests
{
    private const int Steps = 20;

    public static TheoryData<string> RotationVariants() => new() { "Optimizer", "MeanNoMomentum", "MeanMomentum", "SumNoMomentum" };

    private static SketchedOptimizerBase CreateRotation(string name, Accelerator a) => name switch
    {
        "Optimizer" => new DeviceRotation.Optimizer(a),
        "MeanNoMomentum" => new DeviceRotation.MeanNoMomentum(a),
        "MeanMomentum" => new DeviceRotation.MeanMomentum(a),
        "SumNoMomentum" => new DeviceRotation.SumNoMomentum(a),
        _ => throw new ArgumentException(name),
    };

    private static StepOutcome Step(SketchedOptimizerBase opt, float lr, ArrayView<float>[] p, ArrayView<float>[] g) => opt switch
    {
        DeviceRotation.Optimizer o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        DeviceRotation.MeanNoMomentum o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        DeviceRotation.MeanMomentum o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        DeviceRotation.SumNoMomentum o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        DeviceUniversal.Optimizer o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        DeviceUniversal.MeanNoMomentum o => o.Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
        CountSketchAdam o => o.Step(lr, p, g),
        _ => throw new ArgumentException(opt.GetType().Name),
    };

    private static void Run(SketchedOptimizerBase generated, OptimizerSettings settings, IReadOnlyList<TensorSpec> specs, Accelerator accelerator, bool bitExact)
    {
        using var runtime = new CountSketchAdam(settings, specs, accelerator);
        var host = Parameters(specs, 23);
        var buffers = new List<MemoryBuffer1D<float, Stride1D.Dense>>();
        ArrayView<float>[] Upload(float[][] x) => x.Select(a => { var b = accelerator.Allocate1D(a); buffers.Add(b); return b.View.AsContiguous(); }).ToArray();
        try
        {
            var pg = Upload(host);
            var pr = Upload(host);
            for (int step = 1; step <= Steps; step++)
            {
                var g = Upload(Gradients(specs, 23, step));
                float lr = 1e-3f * (1 + step % 3);
                Assert.Equal(StepOutcome.Applied, Step(generated, lr, pg, g));
                Assert.Equal(StepOutcome.Applied, Step(runtime, lr, pr, g));
            }
            var a = pg.Select(v => ArrayViewExtensions.GetAsArray1D<float>(v)).ToArray();
            var b = pr.Select(v => ArrayViewExtensions.GetAsArray1D<float>(v)).ToArray();
            if (bitExact)
            {
                AssertBitIdentical(a, b);
                AssertBitIdentical(Enumerable.Range(0, specs.Count).Select(generated.CopyFirstMoment).ToArray(), Enumerable.Range(0, specs.Count).Select(runtime.CopyFirstMoment).ToArray());
                AssertBitIdentical(Enumerable.Range(0, specs.Count).Select(generated.CopySecondMoment).ToArray(), Enumerable.Range(0, specs.Count).Select(runtime.CopySecondMoment).ToArray());
            }
            else AssertClose(specs, a, b, 1e-5, "Universal device (atomics)");
            Assert.False(host[0].SequenceEqual(a[0]));
        }
        finally
        {
            foreach (var buffer in buffers) buffer.Dispose();
        }
    }

    [Theory]
    [MemberData(nameof(RotationVariants))]
    public void Rotation_and_dense_device_steps_are_bit_identical_to_the_run_time_optimizer(string variant)
    {
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        using var generated = CreateRotation(variant, accelerator);
        Assert.Contains(generated.Tensors, t => t.IsDense);
        Run(generated, generated.Settings, DeviceRotation.Optimizer.TensorSpecs, accelerator, bitExact: true);   // every variant declares the same tensors
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Universal_device_steps_are_bit_identical_to_the_run_time_optimizer_when_the_atomics_run_in_order(bool meanNoMomentum)
    {
        // ILGPU's sequential CPU mode runs a kernel's threads one after another, so the scatter's float atomics add in index
        // order in both optimizers.
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0, CPUAcceleratorMode.Sequential);
        Assert.Equal(CPUAcceleratorMode.Sequential, accelerator.Mode);
        using SketchedOptimizerBase generated = meanNoMomentum ? new DeviceUniversal.MeanNoMomentum(accelerator) : new DeviceUniversal.Optimizer(accelerator);
        var specs = meanNoMomentum ? DeviceUniversal.MeanNoMomentum.TensorSpecs : DeviceUniversal.Optimizer.TensorSpecs;
        Run(generated, generated.Settings, specs, accelerator, bitExact: true);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Universal_device_steps_agree_with_the_run_time_optimizer_to_rounding(bool meanNoMomentum)
    {
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        using SketchedOptimizerBase generated = meanNoMomentum ? new DeviceUniversal.MeanNoMomentum(accelerator) : new DeviceUniversal.Optimizer(accelerator);
        var specs = meanNoMomentum ? DeviceUniversal.MeanNoMomentum.TensorSpecs : DeviceUniversal.Optimizer.TensorSpecs;
        Run(generated, generated.Settings, specs, accelerator, bitExact: false);
    }
}
