using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Collins.Bench;

/// <summary>
/// <c>--dump-ptx DIR</c>: compiles every device kernel the bench's generated optimizers load (the runtime's specialised
/// kernels with each optimizer's constants and tensor descriptors; every size and variant) to PTX
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
        // Compiles one kernel to PTX into the directory, counting it and whether it declares local memory; a failure is reported and counted.
        void Emit(string name, MethodInfo kernel)
        {
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
        foreach (var model in Models)
            foreach (var variant in model.GetNestedTypes(BindingFlags.Public).Where(t => typeof(SketchedOptimizerBase).IsAssignableFrom(t)))
                foreach (var (tensor, kernel) in Collins.Kernels.SpecializedDeviceKernels.KernelsOf(variant))
                    Emit($"{model.Name}.{variant.Name}.{tensor}.{kernel.Name}", kernel);
        // The run-time optimizer's generic kernels (constants as arguments, rows in a loop), for comparison with the specialised ones.
        var runtimeKernels = typeof(CountSketchAdam).GetMethods(BindingFlags.Static | BindingFlags.NonPublic)
            .Where(m => m.Name.EndsWith("Kernel", StringComparison.Ordinal)).ToList();
        var counts = new List<(string Name, int Instructions, int Loads, int Branches)>();
        foreach (var kernel in runtimeKernels)
            Emit("runtime.CountSketchAdam." + kernel.Name, kernel);
        // The factored second moment's kernels (β1 = 0, update clipping, the block-quantised first moment; shared by every factored
        // tensor: the shape and the settings are arguments), once: the bench's single-tensor models have no factored variant.
        foreach (string kernelName in Collins.Kernels.FactoredDeviceKernels.Names)
        {
            var kernel = typeof(Collins.Kernels.FactoredDeviceKernels).GetMethod(kernelName, BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic)!;
            Emit("runtime.Factored." + kernelName, kernel);
        }
        foreach (var file in Directory.GetFiles(directory, "*.ptx").Order(StringComparer.Ordinal))
            counts.Add(Count(Path.GetFileNameWithoutExtension(file), File.ReadAllLines(file)));
        Console.WriteLine("Static PTX size of the Rotation kernels (instructions / float loads / branches), specialised per tensor against the run-time generic kernel:");
        foreach (var c in counts.Where(c => c.Name.Contains("Rotation", StringComparison.Ordinal) && !c.Name.Contains("(dense)", StringComparison.Ordinal) && (c.Name.StartsWith("runtime.", StringComparison.Ordinal) || c.Name.StartsWith("Model64M.", StringComparison.Ordinal))))
            Console.WriteLine($"  {c.Name}: {c.Instructions} / {c.Loads} / {c.Branches}");
        Console.WriteLine($"PTX (sm_90, ILGPU {typeof(Context).Assembly.GetName().Version}) of {written} kernels written to {Path.GetFullPath(directory)}; " +
                          $"{local} declare local memory; {failed} failed to compile");
        return failed == 0 && written > 0 ? 0 : 1;
    }

    /// <summary>Instructions (lines that are neither directives, labels, braces nor register declarations), f32 loads and branches of one PTX file.</summary>
    private static (string, int, int, int) Count(string name, string[] lines)
    {
        int instructions = 0, loads = 0, branches = 0;
        foreach (var raw in lines)
        {
            string line = raw.Trim();
            if (line.Length == 0 || line[0] is '.' or '/' or '{' or '}' or '(' or ')' || line.EndsWith(':') || line.StartsWith("ld.param", StringComparison.Ordinal)) continue;
            if (line.StartsWith('@')) line = line[(line.IndexOf(' ') + 1)..].TrimStart();
            instructions++;
            if (line.StartsWith("ld.", StringComparison.Ordinal) && line.Contains(".f32", StringComparison.Ordinal)) loads++;
            if (line.StartsWith("bra", StringComparison.Ordinal)) branches++;
        }
        return (name, instructions, loads, branches);
    }
}
