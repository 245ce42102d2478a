using System.Diagnostics;
using System.Globalization;
using System.Runtime.Intrinsics;

namespace Collins.Bench;

public static class CpuBench
{
    public static int Run(Options o)
    {
        Console.WriteLine($"Collins.Bench  d={Options.FormatSize(o.Length)} ({o.Length:N0} params)  ratio={o.Ratio}  threads={o.Threads}/{Environment.ProcessorCount}  reps={o.Reps} (interleaved)");
        Console.WriteLine($"cpu {CpuInfo.Description}  runtime {Environment.Version}  Vector512={Vector512.IsHardwareAccelerated} Vector256={Vector256.IsHardwareAccelerated}  load average at start: {LoadAverage()}");
        Console.WriteLine($"tuning {Collins.Kernels.CpuTuning.Current} (the Rotation kernels' prefetch distances, store kind, tile size and rows per pass, and the factored row bodies' prefetch distance, for this CPU; {Collins.Kernels.CpuTuning.EnvironmentVariable} overrides)");

        var buffers = new BenchBuffers(o.Length);
        var missing = new List<string>();
        var kernels = KernelSet.Create(buffers, o.Ratio, o.Threads, missing,
            o.Filter is null ? null : name => name.Contains("limit") || name == "dense AdamW" || name.Contains(o.Filter, StringComparison.OrdinalIgnoreCase));
        try
        {
            // Warm-up and calibration: steps per sample so that one sample lasts at least MinSampleMs.
            var iters = new int[kernels.Count];
            for (int k = 0; k < kernels.Count; k++)
            {
                kernels[k].Step(); kernels[k].Step();
                var sw = Stopwatch.StartNew();
                kernels[k].Step();
                double ms = sw.Elapsed.TotalMilliseconds;
                iters[k] = Math.Clamp((int)Math.Ceiling(o.MinSampleMs / Math.Max(ms, 1e-3)), 1, 10_000);
            }

            // Interleaved repetitions (the calibration above warmed every kernel up): each sample runs iters[k] steps.
            var samples = Interleaved(kernels.Select(k => (Action)k.Step).ToArray(), o.Reps, warmups: 0, iterations: iters);

            var median = samples.Select(Median).ToArray();
            int triad = kernels.FindIndex(k => k.Name == Floors.Triad.Row);
            int adamw = kernels.FindIndex(k => k.Name == "dense AdamW");

            // Per-kind floors from the floor kernels of this run (Floors.cs): the medians of the kind's passes, plus its k-sized
            // traffic at the triad's bandwidth; vs_floor = floor / median (1.00 = at the floor).
            double? MedianOf(string row) { int i = kernels.FindIndex(k => k.Name == row); return i >= 0 ? median[i] : null; }
            var floorMs = kernels.Select(k => k.Floor?.Milliseconds(MedianOf, median[triad])).ToArray();

            Console.WriteLine();
            Console.WriteLine($"| {"kernel",-34} | {"median ms",9} | {"min ms",8} | {"max ms",8} | {"GB/s",6} | {"B/param",7} | {"floor ms",8} | {"vs_floor",8} | {"vs_adamw",8} | {"vs_limit",8} |");
            Console.WriteLine($"|{new string('-', 36)}|{new string('-', 11)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 8)}|{new string('-', 9)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 10)}|");
            for (int k = 0; k < kernels.Count; k++)
            {
                double gbs = kernels[k].NominalBytesPerParam * o.Length / (median[k] * 1e-3) / 1e9;
                string vsA = adamw >= 0 ? (median[adamw] / median[k]).ToString("F2") : "n/a";
                string vsL = (median[triad] / median[k]).ToString("F2");
                string fl = floorMs[k] is double f ? f.ToString("F3") : "-";
                string vsF = floorMs[k] is double f2 ? (f2 / median[k]).ToString("F2") : "-";
                Console.WriteLine($"| {kernels[k].Name,-34} | {median[k],9:F3} | {samples[k].Min(),8:F3} | {samples[k].Max(),8:F3} | {gbs,6:F1} | {kernels[k].NominalBytesPerParam,7:F0} | {fl,8} | {vsF,8} | {vsA,8} | {vsL,8} |");
            }
            Console.WriteLine();
            Console.WriteLine("nominal bytes per parameter (and, for each kind, the bytes it must move and its floor: t[row] = that floor kernel's median in this run; k-sized traffic at the triad's bandwidth, 12 B/param per triad time):");
            foreach (var k in kernels)
            {
                Console.WriteLine($"  {k.Name,-34} {k.BytesFormula}");
                if (k.Floor is { } floor) Console.WriteLine($"  {"",-34}   floor: {floor.Formula}");
            }
            foreach (var m in missing) Console.WriteLine($"  not measured: {m}");

            // Allocation per step after the first, and state bytes.
            Console.WriteLine();
            Console.WriteLine($"| {"kernel",-34} | {"alloc B/step",12} | {"alloc B/step (caller)",21} | {"StateBytes",12} | {"formula",12} | {"alloc at ctor",13} |");
            Console.WriteLine($"|{new string('-', 36)}|{new string('-', 14)}|{new string('-', 23)}|{new string('-', 14)}|{new string('-', 14)}|{new string('-', 15)}|");
            for (int k = 0; k < kernels.Count; k++)
            {
                int n = o.AllocSteps > 0 ? o.AllocSteps : Math.Clamp(iters[k] * 2, 3, 200);
                kernels[k].Step();
                long thread0 = GC.GetAllocatedBytesForCurrentThread();
                long total0 = GC.GetTotalAllocatedBytes(true);
                for (int i = 0; i < n; i++) kernels[k].Step();
                double total = (GC.GetTotalAllocatedBytes(true) - total0) / (double)n;
                double caller = (GC.GetAllocatedBytesForCurrentThread() - thread0) / (double)n;
                string state = kernels[k].StateBytes?.ToString("N0") ?? "-";
                string formula = kernels[k].FormulaStateBytes?.ToString("N0") ?? "-";
                string ctor = kernels[k].ConstructionBytes > 0 ? kernels[k].ConstructionBytes.ToString("N0") : "-";
                Console.WriteLine($"| {kernels[k].Name,-34} | {total,12:F1} | {caller,21:F1} | {state,12} | {formula,12} | {ctor,13} |");
            }
            Console.WriteLine($"(alloc over {(o.AllocSteps > 0 ? o.AllocSteps.ToString() : "2×calibrated")} steps after warm-up; 'alloc at ctor' is the whole-process delta while constructing: state + workspace + plans)");
            if (o.Phases) { Console.WriteLine(); PhaseProbe.Run(buffers, o.Ratio, o.Threads, o.Reps, Console.Out); }
            Console.WriteLine($"load average at end: {LoadAverage()}");

            int rot = kernels.FindIndex(k => k.Name == "generated Rotation");
            int uni = kernels.FindIndex(k => k.Name == "generated Universal");
            string rotPart = rot >= 0 && adamw >= 0
                ? $"Rotation vs_adamw={median[adamw] / median[rot]:F2} vs_limit={median[triad] / median[rot]:F2}"
                : "Rotation not measured (filtered out, or no generated optimizer for this size)";
            string uniPart = uni >= 0 && adamw >= 0 ? $"; Universal vs_adamw={median[adamw] / median[uni]:F2}" : "";
            // The floors (Limits.cs and the triad): the best vs_adamw any kernel with the same memory protocol could reach here.
            int twoPass = kernels.FindIndex(k => k.Name.StartsWith("read + scale"));
            int random = kernels.FindIndex(k => k.Name.StartsWith("random scatter"));
            string floors = adamw >= 0 && twoPass >= 0 && random >= 0
                ? $"; floors: triad vs_adamw={median[adamw] / median[triad]:F2}, two-pass vs_adamw={median[adamw] / median[twoPass]:F2}, random scatter+gather vs_adamw={median[adamw] / median[random]:F2}"
                : "";
            // Every kind's vs_floor, in row order (a kind below 0.9 of its floor shows as such: nothing is rounded up).
            var perKind = Enumerable.Range(0, kernels.Count).Where(k => floorMs[k] is not null)
                .Select(k => $"{kernels[k].Name} vs_floor={floorMs[k]!.Value / median[k]:F2} ({median[k]:F2}/{floorMs[k]!.Value:F2} ms)");
            string kinds = $"; per-kind floors: {string.Join(", ", perKind)}";
            Console.WriteLine($"SUMMARY d={Options.FormatSize(o.Length)} ratio={o.Ratio} threads={o.Threads} cpu=\"{CpuInfo.Description}\" tuning=\"{Collins.Kernels.CpuTuning.Current.Name}\": {rotPart}{uniPart}; triad {median[triad]:F2} ms ({12.0 * o.Length / (median[triad] * 1e-3) / 1e9:F1} GB/s), dense AdamW {(adamw >= 0 ? median[adamw].ToString("F2") : "n/a")} ms{floors}{kinds}");
            return 0;
        }
        finally
        {
            foreach (var k in kernels) k.Dispose();
        }
    }

    /// <summary>
    /// Times <paramref name="steps"/> after <paramref name="warmups"/> warm-up calls each (workspaces, JIT tiers): <paramref name="reps"/>
    /// rounds, each timing every step once in a rotated order so that no step always follows the same one; a sample is the mean of
    /// <paramref name="iterations"/>[k] calls (1 unless given). One row of milliseconds per step.
    /// </summary>
    public static double[][] Interleaved(IReadOnlyList<Action> steps, int reps, int warmups = 2, IReadOnlyList<int>? iterations = null)
    {
        foreach (var s in steps) for (int w = 0; w < warmups; w++) s();
        var samples = steps.Select(_ => new double[reps]).ToArray();
        for (int rep = 0; rep < reps; rep++)
            for (int j = 0; j < steps.Count; j++)
            {
                int k = (j + rep) % steps.Count, n = iterations?[k] ?? 1;
                var step = steps[k];
                long t0 = Stopwatch.GetTimestamp();
                for (int it = 0; it < n; it++) step();
                samples[k][rep] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds / n;
            }
        return samples;
    }

    public static double Median(double[] xs)
    {
        var s = (double[])xs.Clone();
        Array.Sort(s);
        return s.Length % 2 == 1 ? s[s.Length / 2] : 0.5 * (s[s.Length / 2 - 1] + s[s.Length / 2]);
    }

    public static string LoadAverage()
    {
        try { return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch { return "n/a"; }
    }
}
