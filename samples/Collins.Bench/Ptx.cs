using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Collins.Bench;

/// <summary>
/// <c>--dump-ptx DIR</c>: compiles every generated device kernel of the bench's models (every size and variant) to PTX
/// for sm_90 with ILGPU's PTX backend, which needs no GPU, and writes one file per kernel. On the GPU machine,
/// run-gpu.sh assembles them with <c>ptxas -v</c>, which reports the registers and any spill to local memory per kernel.
/// </summary>
public static class PtxDump
{
    private static readonly Type[] Models = { typeof(Model1M), typeof(Model16M), typeof(Model64M), typeof(Model256M) };

    public static int Run(string directory)
    {
        Directory.CreateDirectory(directory);
        using var context = Context.Create(b => b.CPU());
        using var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_90), CudaArchitecture.SM_90,
                                           CudaInstructionSet.ISA_83, null!);
        int written = 0, local = 0, failed = 0;
        foreach (var model in Models)
            foreach (var variant in model.GetNestedTypes(BindingFlags.Public).Where(t => typeof(SketchedOptimizerBase).IsAssignableFrom(t)))
                foreach (var tensor in variant.GetNestedTypes(BindingFlags.Public | BindingFlags.NonPublic))
                    foreach (var kernel in tensor.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)
                                                 .Where(m => m.Name.EndsWith("Kernel", StringComparison.Ordinal)))
                    {
                        string name = $"{model.Name}.{variant.Name}.{tensor.Name}.{kernel.Name}";
                        try
                        {
                            var compiled = backend.Compile(EntryPointDescription.FromImplicitlyGroupedKernel(kernel), KernelSpecialization.Empty);
                            string ptx = ((PTXCompiledKernel)compiled).PTXAssembly;
                            File.WriteAllText(Path.Combine(directory, name + ".ptx"), ptx);
                            written++;
                            if (ptx.Contains(".local", StringComparison.Ordinal)) { local++; Console.WriteLine($"{name}: declares local memory"); }
                        }
                        catch (Exception e)
                        {
                            failed++;
                            Console.Error.WriteLine($"{name}: {e.GetType().Name}: {e.Message}");
                        }
                    }
        Console.WriteLine($"PTX (sm_90, ILGPU {typeof(Context).Assembly.GetName().Version}) of {written} kernels written to {Path.GetFullPath(directory)}; " +
                          $"{local} declare local memory; {failed} failed to compile");
        return failed == 0 && written > 0 ? 0 : 1;
    }
}
