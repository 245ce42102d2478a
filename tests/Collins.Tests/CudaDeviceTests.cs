using Collins.Reference;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using static Collins.Tests.Generated.GeneratedTestSupport;

namespace Collins.Tests.Generated;

/// <summary>
/// A fact that runs only where ILGPU finds a CUDA device, and is skipped with the reason everywhere else (xunit 2 has no
/// dynamic skip, so the probe runs when the attribute is built).
/// </summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        if (!CudaProbe.Available(out string why)) Skip = "needs a CUDA device: " + why;
    }
}

internal static class CudaProbe
{
    private static readonly Lazy<(bool Ok, string Why)> s_probe = new(() =>
    {
        try
        {
            using var context = Context.Create(b => b.Cuda());
            int n = context.GetCudaDevices().Count;
            return n > 0 ? (true, "") : (false, "ILGPU found no CUDA device on this machine (no NVIDIA GPU or driver); run on a GPU machine");
        }
        catch (Exception e)
        {
            return (false, "the CUDA runtime could not be loaded (" + e.GetType().Name + ": " + e.Message + "); run on a GPU machine");
        }
    });

    public static bool Available(out string why)
    {
        var (ok, reason) = s_probe.Value;
        why = reason;
        return ok;
    }
}

/// <summary>The generated device kernels on a real CUDA device, against the scalar reference (skipped without one).</summary>
public class CudaDeviceTests
{
    [CudaFact]
    public void Generated_rotation_optimizer_on_a_cuda_device_matches_the_reference_and_skips_non_finite_steps()
    {
        using var context = Context.Create(b => b.Cuda());
        using var accelerator = context.CreateCudaAccelerator(0);
        using var opt = new DeviceRotation.Optimizer(accelerator);
        var specs = DeviceRotation.Optimizer.TensorSpecs;
        var reference = new ReferenceOptimizer(DeviceRotation.Optimizer.DefaultSettings, specs);
        var host = Parameters(specs, 31);
        var expected = Clone(host);
        var p = host.Select(a => accelerator.Allocate1D(a)).ToArray();
        var g = host.Select(a => accelerator.Allocate1D<float>(a.Length)).ToArray();
        try
        {
            for (int s = 1; s <= 5; s++)
            {
                var grads = Gradients(specs, 31, s);
                for (int t = 0; t < grads.Length; t++) g[t].CopyFromCPU(grads[t]);
                Assert.Equal(StepOutcome.Applied, opt.Step(0.01f, p[0].View, g[0].View, p[1].View, g[1].View, p[2].View, g[2].View));
                reference.Step(0.01f, expected, grads);
            }
            AssertClose(specs, expected, p.Select(b => b.GetAsArray1D()).ToArray(), 1e-5, "CUDA");
            var before = p.Select(b => b.GetAsArray1D()).ToArray();
            var bad = Gradients(specs, 31, 6);
            bad[2][3] = float.NaN;
            for (int t = 0; t < bad.Length; t++) g[t].CopyFromCPU(bad[t]);
            Assert.Equal(StepOutcome.SkippedNonFinite, opt.Step(0.01f, p[0].View, g[0].View, p[1].View, g[1].View, p[2].View, g[2].View));
            AssertBitIdentical(before, p.Select(b => b.GetAsArray1D()).ToArray());
            Assert.Equal(2, opt.LastNonFinite?.TensorIndex);
        }
        finally
        {
            foreach (var b in p.Concat(g)) b.Dispose();
        }
    }
}
