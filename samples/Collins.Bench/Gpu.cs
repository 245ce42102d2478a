using System.Diagnostics;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Collins;

namespace Collins.Bench;

/// <summary>
/// --gpu: optimizer steps on a CUDA accelerator through their device Step (ArrayView overloads), against a device-to-device copy
/// (8 B/param), an ILGPU stream triad (12 B/param, the limit) and an ILGPU dense fused AdamW (28 B/param) at the same size: the
/// generated optimizers (Rotation, Universal; β1 0.9 and 0) and the run-time <see cref="CountSketchAdam"/> rows of
/// <see cref="GpuRows.RunTime"/> (Rotation as a control, the factored second moment, update clipping, the block-quantised first
/// moment, gradient-norm clipping). With --whole-model, <see cref="GpuWholeModel"/> steps the GPT-2-small-shaped model instead.
/// --gpu-backend cpu runs the same code on ILGPU's CPU accelerator (very slow; only to check the code path where no GPU exists).
/// </summary>
public static class GpuBench
{
    public delegate StepOutcome ViewStep(float learningRate, ArrayView<float> parameters, ArrayView<float> gradient);

    /// <summary>One timed row: its step, the bytes its kind must move per parameter, and (for an optimizer) the optimizer.</summary>
    public sealed class Row(string name, double bytesPerParam, bool hasFloor, Action step, SketchedOptimizerBase? optimizer, double constructionSeconds)
    {
        public string Name { get; } = name;
        /// <summary>Bytes per parameter: the nominal traffic of a reference kernel, or an optimizer's floor bytes (<see cref="Floors"/>).</summary>
        public double BytesPerParam { get; } = bytesPerParam;
        /// <summary>Whether <see cref="BytesPerParam"/> is a floor (vs_floor is printed) rather than a reference kernel's traffic.</summary>
        public bool HasFloor { get; } = hasFloor;
        public Action Step { get; } = step;
        public SketchedOptimizerBase? Optimizer { get; } = optimizer;
        /// <summary>Seconds to construct the optimizer (state allocation; the run-time optimizer also compiles its kernels).</summary>
        public double ConstructionSeconds { get; } = constructionSeconds;
    }

    /// <summary>Creates the CUDA (or, with --gpu-backend cpu, ILGPU's CPU) accelerator, or prints why not and returns null.</summary>
    internal static Accelerator? CreateAccelerator(Options o, out Context context)
    {
        context = o.GpuBackend == "cpu" ? Context.Create(b => b.CPU()) : Context.Create(b => b.Cuda());
        var kind = o.GpuBackend == "cpu" ? AcceleratorType.CPU : AcceleratorType.Cuda;
        foreach (var d in context.Devices)
            if (d.AcceleratorType == kind) return d.CreateAccelerator(context);
        Console.Error.WriteLine("no CUDA device: ILGPU Context.Create(b => b.Cuda()) found none (is the NVIDIA driver visible?)");
        return null;
    }

    public static int Run(Options o)
    {
        if (o.GpuBackend is not ("cuda" or "cpu")) { Console.Error.WriteLine($"error: --gpu-backend must be cuda or cpu, not '{o.GpuBackend}'"); return 2; }
        var acc = CreateAccelerator(o, out var context);
        using var ownedContext = context;
        if (acc is null) return 3;
        using var ownedAccelerator = acc;
        return o.WholeModel ? GpuWholeModel.Run(o, acc) : RunSingleTensor(o, acc);
    }

    private static int RunSingleTensor(Options o, Accelerator acc)
    {
        Console.WriteLine($"Collins.Bench --gpu  device: {acc.Name} ({acc.AcceleratorType}), memory {acc.MemorySize / (1 << 20):N0} MiB, ratio={o.Ratio}, reps={o.Reps} (interleaved)");

        // The largest benchmark size whose shared buffers and every row's state and workspace fit with room to spare.
        int length = o.LengthGiven ? o.Length : GpuRows.ChooseLength(acc.MemorySize, o.Ratio);
        if (length == 0) { Console.Error.WriteLine("not even 1M parameters fit on the device with every row"); return 3; }
        long needed = GpuRows.RequiredBytes(length, o.Ratio);
        Console.WriteLine($"d={Options.FormatSize(length)} ({length:N0} params); device memory for every row at once ≤ {needed / (1 << 20):N0} MiB");
        if (needed > acc.MemorySize) { Console.Error.WriteLine($"error: d={Options.FormatSize(length)} needs {needed / (1 << 20):N0} MiB, the device has {acc.MemorySize / (1 << 20):N0}"); return 3; }

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

        var rows = new List<Row>
        {
            new("device copy (d2d)", 8, false, () => p.View.CopyTo(copy.View), null, 0),
            new(Floors.Triad.Row, Floors.Triad.BytesPerParam, false, () => triad(length, p.View, g.View, 1e-7f), null, 0),
        };
        int t = 0;
        rows.Add(new("dense AdamW (ILGPU)", Floors.DenseAdamW(beta1Zero: false).BytesPerParam, false, () =>
        {
            t = t % 1000 + 1;
            adamw(length, p.View, g.View, m.View, v.View, DenseScalars.For(t));
        }, null, 0));

        // --filter keeps the copy, the triad, dense AdamW and the optimizer rows whose name contains it.
        bool Wanted(string name) => o.Filter is null || name.Contains(o.Filter, StringComparison.OrdinalIgnoreCase);
        var missing = new List<string>();
        try
        {
            var model = GeneratedKernel.ModelFor(length);
            foreach (var settings in GpuRows.GeneratedSettings(o.Ratio))
            {
                bool b0 = settings.Beta1 == 0;
                string variant = GeneratedKernel.VariantName(settings.Layout, o.Ratio, b0);
                string name = $"generated {settings.Layout}{(b0 ? " β1=0" : "")}";
                if (!Wanted(name)) continue;
                var type = model?.GetNestedType(variant, BindingFlags.Public);
                var ctor = type?.GetConstructor([typeof(Accelerator)]);
                var step = type?.GetMethod("Step", BindingFlags.Public | BindingFlags.Instance, [typeof(float), typeof(ArrayView<float>), typeof(ArrayView<float>)]);
                if (ctor is null || step is null)
                {
                    missing.Add(model is null ? $"{name}: no generated model for d={length} (sizes 1M, 16M, 64M, 256M)" : $"{model.Name}.{variant}: not generated (or no device Step)");
                    continue;
                }
                long t0 = Stopwatch.GetTimestamp();
                var opt = (SketchedOptimizerBase)ctor.Invoke([acc]);
                double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                var del = step.CreateDelegate<ViewStep>(opt);
                rows.Add(new(name, Floors.ModelBytes(opt.Tensors, opt.Settings) / length, true, () =>
                {
                    var outcome = del(1e-4f, p.View, g.View);
                    if (outcome != StepOutcome.Applied) throw new InvalidOperationException($"{variant}: {outcome}");
                }, opt, seconds));
            }
            foreach (var row in GpuRows.RunTime(length, o.Ratio, missing))
            {
                if (!Wanted(row.Name)) continue;
                long t0 = Stopwatch.GetTimestamp();
                var opt = new CountSketchAdam(row.Settings, [row.Spec], acc);
                double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                ArrayView<float>[] ps = [p.View], gs = [g.View];   // built once: a step allocates nothing here
                rows.Add(new(row.Name, row.Floor.BytesPerParam, true, () =>
                {
                    var outcome = opt.Step(1e-4f, ps, gs);
                    if (outcome != StepOutcome.Applied) throw new InvalidOperationException($"{row.Name}: {outcome}");
                }, opt, seconds));
            }

            var result = Measure(acc, rows, o.Reps, o.MinSampleMs);
            Print(rows, result, length, "d");
            foreach (var s in missing) Console.WriteLine($"  not measured: {s}");
            Console.WriteLine("B/param: copy 8, triad 12, dense AdamW 28; an optimizer's = the bytes its kind must move (Floors.cs, the CPU bench's floors):");
            foreach (var r in rows.Where(r => r.Optimizer is not null))
                Console.WriteLine($"  {r.Name,-44} {Floors.Of(r.Optimizer!.Tensors[0], r.Optimizer.Settings).Formula}");
            Console.WriteLine(Summary($"gpu d={Options.FormatSize(length)} ratio={o.Ratio}", rows, result));
            return 0;
        }
        finally
        {
            foreach (var r in rows) r.Optimizer?.Dispose();
        }
    }

    /// <summary>The medians of a run, and each row's first (compiling) step.</summary>
    internal sealed record Result(double[] MedianMs, double[] FirstStepSeconds);

    /// <summary>
    /// Warm-up (the first step, timed: kernel compilation; then a second), calibration (steps per sample so that one lasts
    /// <paramref name="minSampleMs"/>), then <paramref name="reps"/> interleaved samples per row, each synchronised.
    /// </summary>
    internal static Result Measure(Accelerator acc, IReadOnlyList<Row> rows, int reps, double minSampleMs)
    {
        var first = new double[rows.Count];
        var iters = new int[rows.Count];
        for (int k = 0; k < rows.Count; k++)
        {
            long t0 = Stopwatch.GetTimestamp();
            rows[k].Step(); acc.Synchronize();
            first[k] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            rows[k].Step(); acc.Synchronize();
            var sw = Stopwatch.StartNew();
            rows[k].Step(); acc.Synchronize();
            iters[k] = Math.Clamp((int)Math.Ceiling(minSampleMs / Math.Max(sw.Elapsed.TotalMilliseconds, 1e-3)), 1, 10_000);
        }
        var samples = rows.Select(_ => new double[reps]).ToArray();
        for (int r = 0; r < reps; r++)
            for (int j = 0; j < rows.Count; j++)
            {
                int k = (j + r) % rows.Count;
                acc.Synchronize();
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < iters[k]; i++) rows[k].Step();
                acc.Synchronize();
                samples[k][r] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds / iters[k];
            }
        return new(samples.Select(CpuBench.Median).ToArray(), first);
    }

    /// <summary>
    /// The table: rows 0, 1, 2 must be the copy, the triad and dense AdamW. vs_adamw, vs_limit and vs_copy are their medians over
    /// the row's; vs_floor = the row's bytes at the triad's bandwidth (B/param / 12 · triad median) over its median.
    /// </summary>
    internal static void Print(IReadOnlyList<Row> rows, Result result, long parameters, string what)
    {
        var median = result.MedianMs;
        const int copyRow = 0, triadRow = 1, adamRow = 2;
        Console.WriteLine();
        Console.WriteLine($"| {"kernel",-44} | {"median ms",9} | {"GB/s",7} | {"B/param",7} | {"vs_adamw",8} | {"vs_limit",8} | {"vs_copy",7} | {"vs_floor",8} | {"StateBytes",14} | {"setup s",7} |");
        Console.WriteLine($"|{new string('-', 46)}|{new string('-', 11)}|{new string('-', 9)}|{new string('-', 9)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 9)}|{new string('-', 10)}|{new string('-', 16)}|{new string('-', 9)}|");
        for (int k = 0; k < rows.Count; k++)
        {
            var r = rows[k];
            double gbs = r.BytesPerParam * parameters / (median[k] * 1e-3) / 1e9;
            string state = r.Optimizer?.StateBytes.ToString("N0") ?? (k == adamRow ? (8L * parameters).ToString("N0") : "-");
            string vsFloor = r.HasFloor ? (FloorMs(r, median[triadRow]) / median[k]).ToString("F2") : "-";
            double setup = r.ConstructionSeconds + result.FirstStepSeconds[k];
            Console.WriteLine($"| {r.Name,-44} | {median[k],9:F3} | {gbs,7:F1} | {r.BytesPerParam,7:F3} | {median[adamRow] / median[k],8:F2} | {median[triadRow] / median[k],8:F2} | {median[copyRow] / median[k],7:F2} | {vsFloor,8} | {state,14} | {setup,7:F2} |");
        }
        Console.WriteLine($"({what} = {parameters:N0} parameters; setup s = construction + the first step, which compiles the kernels; vs_floor = B/param at the triad's bandwidth / median)");
    }

    /// <summary>The row's floor time: its bytes per parameter at the triad's bandwidth (12 B/param per triad median).</summary>
    internal static double FloorMs(Row row, double triadMs) => row.BytesPerParam / Floors.Triad.BytesPerParam * triadMs;

    /// <summary>One line with every optimizer row's vs_adamw, vs_limit, vs_copy and vs_floor.</summary>
    internal static string Summary(string head, IReadOnlyList<Row> rows, Result result)
    {
        var median = result.MedianMs;
        var parts = new List<string> { $"copy {median[0]:F3} ms, triad {median[1]:F3} ms, dense AdamW {median[2]:F3} ms" };
        for (int k = 3; k < rows.Count; k++)
            parts.Add($"{rows[k].Name} {median[k]:F3} ms vs_adamw={median[2] / median[k]:F2} vs_limit={median[1] / median[k]:F2} vs_copy={median[0] / median[k]:F2} vs_floor={FloorMs(rows[k], median[1]) / median[k]:F2}");
        return $"SUMMARY {head}: {string.Join("; ", parts)}";
    }

    public readonly record struct DenseScalars(float LearningRate, float Decay, float InvBiasCorrection1, float InvSqrtBiasCorrection2)
    {
        /// <summary>Step <paramref name="t"/> of AdamW at lr 1e-4, β 0.9 / 0.999, weight decay 0.01.</summary>
        public static DenseScalars For(int t)
        {
            var s = StepScalars.For(t, 1e-4f, 0.9, 0.999, 0.01);
            return new(s.LearningRate, s.Decay, s.InvBiasCorrection1, s.InvSqrtBiasCorrection2);
        }
    }

    internal static void TriadKernel(Index1D i, ArrayView<float> p, ArrayView<float> g, float a) => p[i] -= a * g[i];

    internal static void AdamWKernel(Index1D i, ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, DenseScalars s)
    {
        float gi = g[i];
        float mi = 0.9f * m[i] + 0.1f * gi;
        float vi = 0.999f * v[i] + 0.001f * gi * gi;
        m[i] = mi; v[i] = vi;
        p[i] = p[i] * s.Decay - s.LearningRate * (mi * s.InvBiasCorrection1) / (MathF.Sqrt(vi) * s.InvSqrtBiasCorrection2 + 1e-8f);
    }
}
