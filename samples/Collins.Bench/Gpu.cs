using System.Diagnostics;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Collins;

namespace Collins.Bench;

/// <summary>
/// --gpu: the generated optimizers' device Step (ArrayView overload) on a CUDA accelerator, against a
/// device-to-device copy (8 B/param), an ILGPU stream triad (12 B/param) and an ILGPU dense fused
/// AdamW (28 B/param) at the same size. --gpu-backend cpu runs the same code on ILGPU's CPU
/// accelerator (very slow; only to check the code path where no GPU exists).
/// </summary>
public static class GpuBench
{
    public delegate StepOutcome ViewStep(float learningRate, ArrayView<float> parameters, ArrayView<float> gradient);

    private static readonly int[] Sizes = { 1 << 28, 1 << 26, 1 << 24, 1 << 20 };

    public static int Run(Options o)
    {
        using var context = o.GpuBackend == "cpu" ? Context.Create(b => b.CPU()) : Context.Create(b => b.Cuda());
        var kind = o.GpuBackend == "cpu" ? AcceleratorType.CPU : AcceleratorType.Cuda;
        Device? device = null;
        foreach (var d in context.Devices) if (d.AcceleratorType == kind) { device = d; break; }
        if (device is null)
        {
            Console.Error.WriteLine("no CUDA device: ILGPU Context.Create(b => b.Cuda()) found none (is the NVIDIA driver visible?)");
            return 3;
        }
        using var acc = device.CreateAccelerator(context);
        Console.WriteLine($"Collins.Bench --gpu  device: {acc.Name} ({acc.AcceleratorType}), memory {acc.MemorySize / (1 << 20):N0} MiB, ratio={o.Ratio}, reps={o.Reps} (interleaved)");

        // The largest benchmark size whose buffers fit with room to spare: p, g, copy target, dense m and v (5·4·d) + sketches.
        int length = o.LengthGiven ? o.Length : Sizes.FirstOrDefault(d => 5L * 4 * d * 5 / 4 < acc.MemorySize);
        if (length == 0) { Console.Error.WriteLine("not even 1M parameters fit on the device"); return 3; }
        Console.WriteLine($"d={Options.FormatSize(length)} ({length:N0} params)");

        using var p = acc.Allocate1D<float>(length);
        using var g = acc.Allocate1D<float>(length);
        using var copy = acc.Allocate1D<float>(length);
        using var m = acc.Allocate1D<float>(length);
        using var v = acc.Allocate1D<float>(length);
        var host = new BenchBuffers(length);
        p.View.CopyFromCPU(host.Parameters);
        g.View.CopyFromCPU(host.Gradient);
        m.MemSetToZero(); v.MemSetToZero();
        acc.Synchronize();

        var triad = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float>(TriadKernel);
        var adamw = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DenseScalars>(AdamWKernel);

        var rows = new List<(string Name, double Bytes, Action Step, SketchedOptimizerBase? Opt)>
        {
            ("device copy (d2d)", 8, () => p.View.CopyTo(copy.View), null),
            ("triad (limit)", 12, () => triad(length, p.View, g.View, 1e-7f), null),
        };
        int t = 0;
        rows.Add(("dense AdamW (ILGPU)", 28, () =>
        {
            t = t % 1000 + 1;
            var s = StepScalars.For(t, 1e-4f, 0.9, 0.999, 0.01);
            adamw(length, p.View, g.View, m.View, v.View, new DenseScalars(s.LearningRate, s.Decay, s.InvBiasCorrection1, s.InvSqrtBiasCorrection2));
        }, null));

        var missing = new List<string>();
        var model = GeneratedKernel.ModelFor(length);
        foreach (var layout in new[] { SketchLayout.Rotation, SketchLayout.Universal })
            foreach (bool b0 in new[] { false, true })
            {
                string variant = GeneratedKernel.VariantName(layout, o.Ratio, b0);
                var type = model?.GetNestedType(variant, BindingFlags.Public);
                var ctor = type?.GetConstructor(new[] { typeof(Accelerator) });
                var step = type?.GetMethod("Step", BindingFlags.Public | BindingFlags.Instance, new[] { typeof(float), typeof(ArrayView<float>), typeof(ArrayView<float>) });
                if (ctor is null || step is null) { missing.Add($"{model?.Name ?? "model"}.{variant}: not generated (or no device Step)"); continue; }
                var opt = (SketchedOptimizerBase)ctor.Invoke(new object[] { acc });
                var del = step.CreateDelegate<ViewStep>(opt);
                rows.Add(($"generated {layout}{(b0 ? " β1=0" : "")}", 12, () =>
                {
                    var outcome = del(1e-4f, p.View, g.View);
                    if (outcome != StepOutcome.Applied) throw new InvalidOperationException($"{variant}: {outcome}");
                }, opt));
            }

        try
        {
            var iters = new int[rows.Count];
            for (int k = 0; k < rows.Count; k++)
            {
                rows[k].Step(); rows[k].Step(); acc.Synchronize();     // JIT + kernel compilation
                var sw = Stopwatch.StartNew();
                rows[k].Step(); acc.Synchronize();
                iters[k] = Math.Clamp((int)Math.Ceiling(o.MinSampleMs / Math.Max(sw.Elapsed.TotalMilliseconds, 1e-3)), 1, 10_000);
            }
            var samples = rows.Select(_ => new double[o.Reps]).ToArray();
            for (int r = 0; r < o.Reps; r++)
                for (int j = 0; j < rows.Count; j++)
                {
                    int k = (j + r) % rows.Count;
                    acc.Synchronize();
                    long t0 = Stopwatch.GetTimestamp();
                    for (int i = 0; i < iters[k]; i++) rows[k].Step();
                    acc.Synchronize();
                    samples[k][r] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds / iters[k];
                }
            var median = samples.Select(CpuBench.Median).ToArray();
            int copyRow = 0, triadRow = 1, adamRow = 2;
            Console.WriteLine();
            Console.WriteLine($"| {"kernel",-28} | {"median ms",9} | {"GB/s",7} | {"B/param",7} | {"vs_adamw",8} | {"vs_limit",8} | {"vs_copy",7} | {"StateBytes",14} |");
            Console.WriteLine($"|{new string('-', 30)}|{new string('-', 11)}|{new string('-', 9)}|{new string('-', 9)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 9)}|{new string('-', 16)}|");
            for (int k = 0; k < rows.Count; k++)
            {
                double gbs = rows[k].Bytes * length / (median[k] * 1e-3) / 1e9;
                string state = rows[k].Opt?.StateBytes.ToString("N0") ?? (k == adamRow ? (8L * length).ToString("N0") : "-");
                Console.WriteLine($"| {rows[k].Name,-28} | {median[k],9:F3} | {gbs,7:F1} | {rows[k].Bytes,7:F0} | {median[adamRow] / median[k],8:F2} | {median[triadRow] / median[k],8:F2} | {median[copyRow] / median[k],7:F2} | {state,14} |");
            }
            foreach (var s in missing) Console.WriteLine($"  not measured: {s}");
            int rot = rows.FindIndex(r => r.Name == "generated Rotation");
            Console.WriteLine(rot >= 0
                ? $"SUMMARY gpu d={Options.FormatSize(length)} ratio={o.Ratio}: Rotation vs_adamw={median[adamRow] / median[rot]:F2} vs_limit={median[triadRow] / median[rot]:F2} vs_copy={median[copyRow] / median[rot]:F2}"
                : $"SUMMARY gpu d={Options.FormatSize(length)}: generated Rotation not measured; copy {8.0 * length / (median[copyRow] * 1e-3) / 1e9:F1} GB/s");
            return 0;
        }
        finally
        {
            foreach (var r in rows) r.Opt?.Dispose();
        }
    }

    public readonly record struct DenseScalars(float LearningRate, float Decay, float InvBiasCorrection1, float InvSqrtBiasCorrection2);

    private static void TriadKernel(Index1D i, ArrayView<float> p, ArrayView<float> g, float a) => p[i] -= a * g[i];

    private static void AdamWKernel(Index1D i, ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, DenseScalars s)
    {
        float gi = g[i];
        float mi = 0.9f * m[i] + 0.1f * gi;
        float vi = 0.999f * v[i] + 0.001f * gi * gi;
        m[i] = mi; v[i] = vi;
        p[i] = p[i] * s.Decay - s.LearningRate * (mi * s.InvBiasCorrection1) / (MathF.Sqrt(vi) * s.InvSqrtBiasCorrection2 + 1e-8f);
    }
}
