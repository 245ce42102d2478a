using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Collins.Kernels;

namespace Collins.Tests.Generated;

/// <summary>
/// Every generated ILGPU kernel compiles to PTX for sm_90 with ILGPU's PTX backend, without a GPU, and uses no
/// local memory. Rotation kernels must be atomic-free; the Universal scatter must use atomics.
/// </summary>
public class GeneratedPtxTests
{
    private static readonly Type[] Optimizers =
    {
        typeof(RaggedRotation.Optimizer), typeof(RaggedRotation.MeanNoMomentum),
        typeof(RaggedUniversal.Optimizer), typeof(RaggedUniversal.MeanNoMomentum),
        typeof(Outer.Large.Optimizer),
        typeof(DeviceRotation.Optimizer), typeof(DeviceRotation.MeanNoMomentum),
        typeof(DeviceUniversal.Optimizer), typeof(DeviceUniversal.MeanNoMomentum),
        typeof(FactoredModel.Optimizer), typeof(QuantizedModel.Optimizer), typeof(QuantizedModel.Q4),
    };

    /// <summary>(optimizer, tensor, kernel) for every kernel the generated optimizers load (the runtime's specialised kernels, instantiated as CreateDeviceKernels does).</summary>
    private static IEnumerable<(Type Optimizer, string Tensor, MethodInfo Kernel)> Kernels()
        => Optimizers.SelectMany(o => SpecializedDeviceKernels.KernelsOf(o).Select(k => (o, k.Tensor, k.Kernel)));

    private static string CompileToPtx(PTXBackend backend, MethodInfo kernel)
    {
        var entry = EntryPointDescription.FromImplicitlyGroupedKernel(kernel);
        var compiled = backend.Compile(entry, KernelSpecialization.Empty);
        return ((PTXCompiledKernel)compiled).PTXAssembly;
    }

    /// <summary>ILGPU's PTX backend for sm_90 on a CPU-only context (no GPU needed).</summary>
    private static PTXBackend Sm90Backend(Context context)
        => new(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90, CudaInstructionSet.ISA_83, null!);

    [Fact]
    public void Every_generated_kernel_compiles_to_ptx_for_sm90()
    {
        using var context = Context.Create(b => b.CPU());
        using var backend = Sm90Backend(context);
        Assert.Equal(CudaArchitecture.SM_90, backend.Architecture);
        var kernels = Kernels().ToList();
        Assert.True(kernels.Count >= 40, $"found only {kernels.Count} kernels");
        int rotation = 0, universalScatter = 0, factored = 0;
        foreach (var (optimizer, tensor, kernel) in kernels)
        {
            string ptx = CompileToPtx(backend, kernel);
            string where = $"{optimizer.Name}.{tensor}.{kernel.Name}";
            // The backend is configured for SM_90 (capabilities and architecture); ILGPU 1.5.3 nevertheless writes
            // ".target sm_80" in the module header (sm_80 PTX is forward-compatible and JIT-compiled for sm_90).
            Assert.True(System.Text.RegularExpressions.Regex.IsMatch(ptx, @"\.target sm_(80|90)\b"), $"{where}: unexpected PTX target:\n{ptx[..Math.Min(ptx.Length, 400)]}");
            Assert.True(ptx.Contains(".entry", StringComparison.Ordinal), $"{where}: PTX has no entry point");
            // No local (per-thread stack) memory at the PTX level: every value of the unrolled kernels lives in registers.
            // (Register spills that ptxas may add for a particular GPU are checked on the device: samples/Collins.Bench/run-gpu.sh.)
            Assert.False(ptx.Contains(".local", StringComparison.Ordinal), $"{where}: PTX declares local memory");
            bool atomic = ptx.Contains("atom.", StringComparison.Ordinal) || ptx.Contains("red.", StringComparison.Ordinal);
            bool isUniversal = ((SketchLayout)optimizer.GetProperty("DefaultSettings")!.GetValue(null)!.GetType()
                .GetProperty("Layout")!.GetValue(optimizer.GetProperty("DefaultSettings")!.GetValue(null))!) == SketchLayout.Universal;
            if (kernel.DeclaringType!.Name == "FactoredDeviceKernels") factored++;
            if (kernel.Name == "UniversalScatter")
            {
                Assert.True(atomic, $"{where}: the Universal scatter should use atomics");
                universalScatter++;
            }
            else
            {
                Assert.False(atomic, $"{where}: unexpected atomic instruction in PTX");
                if (!isUniversal && kernel.Name is "RotationAccumulate" or "RotationApply")
                {
                    rotation++;
                    // Unrolled with literal constants: one global load of the gradient (accumulate) or of a parameter (apply) per
                    // row, and no backward branch (a loop over rows would load once inside a loop). Rows is the tensor's constant.
                    if (Environment.GetEnvironmentVariable("COLLINS_DUMP_PTX") is { Length: > 0 } dump)
                        File.WriteAllText(Path.Combine(dump, where + ".ptx"), ptx);
                    int rows = (int)optimizer.GetNestedType(tensor)!.GetField("Rows")!.GetRawConstantValue()!;
                    int loads = System.Text.RegularExpressions.Regex.Count(ptx, @"\bld(\.global)?(\.nc)?\.f32\b");
                    Assert.True(loads >= rows, $"{where}: {loads} global float loads for {rows} rows: the rows are not unrolled");
                }
            }
        }
        Assert.True(rotation >= 10, $"only {rotation} Rotation kernels checked");
        Assert.True(universalScatter >= 4, $"only {universalScatter} Universal scatter kernels checked");
        // The factored kernels of each factored tensor (2 per model above): phase 1, the EMAs, mean(R), clipping, updates.
        Assert.True(factored >= 6 * FactoredKernelCount, $"only {factored} factored kernels checked");
    }

    private const int FactoredKernelCount = 9;

    /// <summary>Control for the unrolling check: the run-time optimizer's Rotation kernel loops over rows, so its PTX loads a few floats, not one per row.</summary>
    [Fact]
    public void The_unrolling_check_sees_a_loop()
    {
        using var context = Context.Create(b => b.CPU());
        using var backend = Sm90Backend(context);
        var kernel = typeof(CountSketchAdam).GetMethod("RotationAccumulateKernel", BindingFlags.Static | BindingFlags.NonPublic)!;
        string ptx = CompileToPtx(backend, kernel);
        int loads = System.Text.RegularExpressions.Regex.Count(ptx, @"\bld(\.global)?(\.nc)?\.f32\b");
        Assert.InRange(loads, 1, 4);   // gradient and σ_r inside the loop body; the Prime tensor above has 16 rows
    }

    /// <summary>A kernel that needs per-thread local memory (a dynamically indexed array), as a control for the check above.</summary>
    private static void LocalArrayKernel(Index1D i, ArrayView<float> x)
    {
        var a = LocalMemory.Allocate1D<float>(8);
        for (int j = 0; j < 8; j++) a[j] = x[j];
        x[i] = a[i % 8];
    }

    [Fact]
    public void The_local_memory_check_sees_local_memory()
    {
        using var context = Context.Create(b => b.CPU());
        using var backend = Sm90Backend(context);
        var kernel = typeof(GeneratedPtxTests).GetMethod(nameof(LocalArrayKernel), BindingFlags.Static | BindingFlags.NonPublic)!;
        Assert.Contains(".local", CompileToPtx(backend, kernel), StringComparison.Ordinal);
    }
}
