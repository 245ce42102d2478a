using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using Collins.Reference;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests.Generated;

/// <summary>The generated ILGPU kernels, run on ILGPU's CPU accelerator, against the scalar reference.</summary>
public class GeneratedDeviceTests
{
    private const float LearningRate = 0.01f;
    private const int Steps = 5;

    private delegate StepOutcome DeviceStep(SketchedOptimizerBase optimizer, float lr, ArrayView<float>[] p, ArrayView<float>[] g);

    private static void RunOnCpuAccelerator(Func<Accelerator, SketchedOptimizerBase> create, DeviceStep step,
                                            OptimizerSettings settings, IReadOnlyList<TensorSpec> specs, int seed, bool injectNaN = false)
    {
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        using var opt = create(accelerator);
        var reference = new ReferenceOptimizer(settings, specs);
        var p = Parameters(specs, seed);
        var expected = Clone(p);
        var pBuffers = p.Select(a => accelerator.Allocate1D(a)).ToArray();
        var gBuffers = p.Select(a => accelerator.Allocate1D<float>(a.Length)).ToArray();
        try
        {
            var pViews = pBuffers.Select(b => b.View.BaseView).ToArray();
            var gViews = gBuffers.Select(b => b.View.BaseView).ToArray();
            for (int s = 1; s <= Steps; s++)
            {
                var g = Gradients(specs, seed, s);
                if (injectNaN && s == 3)
                {
                    var bad = Clone(g);
                    bad[0][17] = float.NaN;
                    for (int t = 0; t < g.Length; t++) gBuffers[t].CopyFromCPU(bad[t]);
                    var pBefore = pBuffers.Select(b => b.GetAsArray1D()).ToArray();
                    var mBefore = Enumerable.Range(0, specs.Count).Select(opt.CopyFirstMoment).ToArray();
                    var vBefore = Enumerable.Range(0, specs.Count).Select(opt.CopySecondMoment).ToArray();
                    long skippedBefore = opt.SkippedSteps;
                    Assert.Equal(StepOutcome.SkippedNonFinite, step(opt, LearningRate, pViews, gViews));
                    // A skipped step changes nothing: parameters and both moments bit for bit, the step counter not advanced.
                    AssertBitIdentical(pBefore, pBuffers.Select(b => b.GetAsArray1D()).ToArray());
                    AssertBitIdentical(mBefore, Enumerable.Range(0, specs.Count).Select(opt.CopyFirstMoment).ToArray());
                    AssertBitIdentical(vBefore, Enumerable.Range(0, specs.Count).Select(opt.CopySecondMoment).ToArray());
                    Assert.Contains(vBefore, v => v.Any(x => x != 0));
                    Assert.Equal(s - 1, opt.StepCount);
                    Assert.Equal(skippedBefore + 1, opt.SkippedSteps);
                }
                for (int t = 0; t < g.Length; t++) gBuffers[t].CopyFromCPU(g[t]);
                Assert.Equal(StepOutcome.Applied, step(opt, LearningRate, pViews, gViews));
                reference.Step(LearningRate, expected, g);
            }
            var actual = pBuffers.Select(b => b.GetAsArray1D()).ToArray();
            AssertClose(specs, expected, actual, 1e-5, opt.GetType().Name);
            Assert.Equal(Steps, opt.StepCount);
        }
        finally
        {
            foreach (var b in pBuffers) b.Dispose();
            foreach (var b in gBuffers) b.Dispose();
        }
    }

    [Fact]
    public void Rotation_kernels_on_cpu_accelerator_match_reference()
        => RunOnCpuAccelerator(a => new DeviceRotation.Optimizer(a),
            (o, lr, p, g) => ((DeviceRotation.Optimizer)o).Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            DeviceRotation.Optimizer.DefaultSettings, DeviceRotation.Optimizer.TensorSpecs, 21, injectNaN: true);

    [Fact]
    public void Rotation_mean_beta1_zero_kernels_on_cpu_accelerator_match_reference()
        => RunOnCpuAccelerator(a => new DeviceRotation.MeanNoMomentum(a),
            (o, lr, p, g) => ((DeviceRotation.MeanNoMomentum)o).Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            DeviceRotation.MeanNoMomentum.DefaultSettings, DeviceRotation.MeanNoMomentum.TensorSpecs, 22);

    [Fact]
    public void Universal_kernels_on_cpu_accelerator_match_reference()
        => RunOnCpuAccelerator(a => new DeviceUniversal.Optimizer(a),
            (o, lr, p, g) => ((DeviceUniversal.Optimizer)o).Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            DeviceUniversal.Optimizer.DefaultSettings, DeviceUniversal.Optimizer.TensorSpecs, 23, injectNaN: true);

    [Fact]
    public void Universal_mean_beta1_zero_kernels_on_cpu_accelerator_match_reference()
        => RunOnCpuAccelerator(a => new DeviceUniversal.MeanNoMomentum(a),
            (o, lr, p, g) => ((DeviceUniversal.MeanNoMomentum)o).Step(lr, p[0], g[0], p[1], g[1], p[2], g[2]),
            DeviceUniversal.MeanNoMomentum.DefaultSettings, DeviceUniversal.MeanNoMomentum.TensorSpecs, 24);

    [Fact]
    public void Cpu_state_optimizer_refuses_device_buffers_and_vice_versa()
    {
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        using var cpu = new DeviceRotation.Optimizer();
        using var buffer = accelerator.Allocate1D<float>(3001);
        var v = buffer.View.BaseView;
        Assert.Throws<InvalidOperationException>(() => cpu.Step(0.1f, v, v, v, v, v, v));
        using var device = new DeviceRotation.Optimizer(accelerator);
        var a = new float[3001];
        Assert.Throws<InvalidOperationException>(() => device.Step(0.1f, a, a, a, a, a, a));
    }
}
