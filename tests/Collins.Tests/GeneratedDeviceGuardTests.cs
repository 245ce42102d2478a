using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests.Generated;

/// <summary>
/// The non-finite policy of the generated device step, on ILGPU's CPU accelerator: a NaN or ±Inf
/// gradient leaves parameters, moment sketches and the step counter bit-identical, whichever
/// policy is set and whichever tensor (sketched or dense) holds it.
/// </summary>
public class GeneratedDeviceGuardTests
{
    [Theory]
    [InlineData(false, 0, float.NaN)]               // Rotation, sketched tensor
    [InlineData(false, 2, float.PositiveInfinity)]  // Rotation, dense tensor
    [InlineData(true, 0, float.NegativeInfinity)]   // Universal, sketched tensor
    [InlineData(true, 1, float.NaN)]                // Universal, tiny sketched tensor
    public void Device_step_with_non_finite_gradient_changes_nothing_under_both_policies(bool universal, int badTensor, float badValue)
    {
        using var context = Context.Create(b => b.CPU());
        using var accelerator = context.CreateCPUAccelerator(0);
        using SketchedOptimizerBase opt = universal ? new DeviceUniversal.Optimizer(accelerator) : new DeviceRotation.Optimizer(accelerator);
        var specs = universal ? DeviceUniversal.Optimizer.TensorSpecs : DeviceRotation.Optimizer.TensorSpecs;
        var p = Parameters(specs, 5).Select(a => accelerator.Allocate1D(a)).ToArray();
        var g = Gradients(specs, 5, 1).Select(a => accelerator.Allocate1D(a)).ToArray();
        var badHost = Gradients(specs, 5, 2);
        badHost[badTensor][badHost[badTensor].Length / 2] = badValue;
        var bad = badHost.Select(a => accelerator.Allocate1D(a)).ToArray();
        try
        {
            Assert.Equal(StepOutcome.Applied, Step(opt, p, g));   // non-zero moments to protect
            var paramsBefore = p.Select(b => b.GetAsArray1D()).ToArray();
            var mBefore = Enumerable.Range(0, specs.Count).Select(opt.CopyFirstMoment).ToArray();
            var vBefore = Enumerable.Range(0, specs.Count).Select(opt.CopySecondMoment).ToArray();

            void AssertUnchanged(long skipped)
            {
                for (int t = 0; t < specs.Count; t++)
                {
                    Assert.Equal(BitsOf(paramsBefore[t]), BitsOf(p[t].GetAsArray1D()));
                    Assert.Equal(BitsOf(mBefore[t]), BitsOf(opt.CopyFirstMoment(t)));
                    Assert.Equal(BitsOf(vBefore[t]), BitsOf(opt.CopySecondMoment(t)));
                }
                Assert.Equal(1, opt.StepCount);
                Assert.Equal(skipped, opt.SkippedSteps);
            }

            Assert.Equal(StepOutcome.SkippedNonFinite, Step(opt, p, bad));
            AssertUnchanged(skipped: 1);

            opt.NonFinitePolicy = NonFinitePolicy.Throw;
            Assert.Throws<NonFiniteGradientException>(() => Step(opt, p, bad));
            AssertUnchanged(skipped: 1);

            // The optimizer is still usable: the next finite step applies.
            Assert.Equal(StepOutcome.Applied, Step(opt, p, g));
            Assert.Equal(2, opt.StepCount);
        }
        finally
        {
            foreach (var b in p.Concat(g).Concat(bad)) b.Dispose();
        }
    }

    private static StepOutcome Step(SketchedOptimizerBase opt, MemoryBuffer1D<float, Stride1D.Dense>[] p, MemoryBuffer1D<float, Stride1D.Dense>[] g)
        => opt switch
        {
            DeviceRotation.Optimizer r => r.Step(1e-2f, p[0].View, g[0].View, p[1].View, g[1].View, p[2].View, g[2].View),
            DeviceUniversal.Optimizer u => u.Step(1e-2f, p[0].View, g[0].View, p[1].View, g[1].View, p[2].View, g[2].View),
            _ => throw new InvalidOperationException(),
        };

    private static int[] BitsOf(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();
}
