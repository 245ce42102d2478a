using System.Diagnostics;
using Collins.Kernels;

namespace Collins.Bench;

/// <summary>
/// <c>--tunings "A;B;…"</c>: the Rotation step (β1 = 0.9 and β1 = 0, the run-time optimizer over one tensor of the bench's length)
/// and the factored step with update clipping (β1 = 0, d/1024 × 1024: all three of its row loops) under each CPU tuning
/// (<see cref="CpuTuning"/>: prefetch distances, store kind, tile size), all in one process. Each round steps
/// every tuning once in a rotated order; a tuning's figure is the median over the rounds of its time divided by the mean time of
/// the first tuning's two copies in the same round, so a change of the machine's memory state between rounds or processes cancels
/// out; the second copy over the first is the A/A spread. This is how a CPU's entry in <see cref="CpuTuning.Known"/> is measured
/// (docs/benchmarks.md, "Per-CPU tuning").
/// </summary>
public static class TuningBench
{
    public static int Run(Options o)
    {
        CpuTuning current;
        List<CpuTuning> tunings;
        try
        {
            current = CpuTuning.Current;
        }
        catch (InvalidOperationException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
        }
        try
        {
            tunings = [.. o.Tunings!.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                           .Select(t => t == "current" ? current : CpuTuning.Parse(t, current))];
        }
        catch (FormatException e)
        {
            Console.Error.WriteLine($"error: --tunings: {e.Message}");
            return 2;
        }
        if (tunings.Count == 0) { Console.Error.WriteLine("error: --tunings needs at least one tuning"); return 2; }
        // The A/A control: the first tuning again, as its own optimizer.
        tunings.Insert(1, tunings[0] with { Name = tunings[0].Name + " (again)" });

        Console.WriteLine($"Collins.Bench --tunings  d={Options.FormatSize(o.Length)} ({o.Length:N0} params)  ratio={o.Ratio}  threads={o.Threads}  reps={o.Reps} (interleaved)");
        Console.WriteLine($"cpu {CpuInfo.Description}  this CPU's tuning: {current}  load average at start: {CpuBench.LoadAverage()}");

        var buffers = new BenchBuffers(o.Length);
        var triad = new TriadKernel(buffers, o.Threads);
        var rows = new List<(string Name, Action Step, IDisposable? Owner)> { ("triad (limit)", triad.Step, null) };
        float[][] p = [buffers.Parameters], g = [buffers.Gradient];
        var kinds = new List<(string Label, string Summary, OptimizerSettings Settings, TensorSpec Spec)>
        {
            ("Rotation", "", new OptimizerSettings { Ratio = o.Ratio, Layout = SketchLayout.Rotation }, new TensorSpec("W", o.Length)),
            ("Rotation β1=0", "β1=0 ", new OptimizerSettings { Ratio = o.Ratio, Beta1 = 0, Layout = SketchLayout.Rotation }, new TensorSpec("W", o.Length)),
        };
        if (o.Length % RuntimeKernel.FactoredColumns == 0)
            kinds.Add(("Factored clip=1", "factored ", new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1 },
                       new TensorSpec("W", [o.Length / RuntimeKernel.FactoredColumns, RuntimeKernel.FactoredColumns])));
        try
        {
            foreach (var kind in kinds)
                foreach (var t in tunings)
                {
                    var opt = new CountSketchAdam(kind.Settings, [kind.Spec], t) { MaxThreads = o.Threads };
                    string name = $"{kind.Label} {t}";
                    rows.Add((name, () =>
                    {
                        if (opt.Step(1e-4f, p, g) != StepOutcome.Applied) throw new InvalidOperationException($"{name}: the step was refused");
                    }, opt));
                }

            // Calibration (also the warm-up): steps per sample so that a sample lasts at least MinSampleMs.
            var iters = rows.Select(r =>
            {
                r.Step(); r.Step();
                long t0 = Stopwatch.GetTimestamp();
                r.Step();
                return Math.Clamp((int)Math.Ceiling(o.MinSampleMs / Math.Max(Stopwatch.GetElapsedTime(t0).TotalMilliseconds, 1e-3)), 1, 10_000);
            }).ToArray();
            var samples = CpuBench.Interleaved(rows.Select(r => r.Step).ToArray(), o.Reps, warmups: 0, iterations: iters);

            Console.WriteLine();
            Console.WriteLine($"| {"row",-100} | {"median ms",9} | {"vs first (paired median)",24} | {"paired min..max",15} |");
            Console.WriteLine($"|{new string('-', 102)}|{new string('-', 11)}|{new string('-', 26)}|{new string('-', 17)}|");
            Console.WriteLine($"| {rows[0].Name,-100} | {CpuBench.Median(samples[0]),9:F3} | {"",24} | {"",15} |");
            var summary = new List<string>();
            for (int group = 0; group < kinds.Count; group++)
            {
                int first = 1 + group * tunings.Count;
                // The reference of a round: the mean of the first tuning's two copies in it (the first optimizer built was measured
                // a few per cent slower than an identical second one, so neither copy alone is the reference).
                var reference = samples[first].Zip(samples[first + 1], (a, b) => 0.5 * (a + b)).ToArray();
                for (int i = 0; i < tunings.Count; i++)
                {
                    int r = first + i;
                    var ratios = i == 1 ? samples[first + 1].Zip(samples[first], (a, b) => a / b).ToArray()
                                        : samples[r].Zip(reference, (a, b) => a / b).ToArray();
                    string paired = i == 1 ? $"A/A {CpuBench.Median(ratios):F3}" : $"{CpuBench.Median(ratios):F3}";
                    string range = $"{ratios.Min():F3}..{ratios.Max():F3}";
                    Console.WriteLine($"| {rows[r].Name,-100} | {CpuBench.Median(samples[r]),9:F3} | {paired,24} | {range,15} |");
                    summary.Add($"{kinds[group].Summary}{(i == 1 ? "A/A" : $"[{tunings[i].Key}]")}={CpuBench.Median(ratios):F3}");
                }
            }
            Console.WriteLine("(time ratio to the mean of the first tuning's two copies in the same round, median over rounds: below 1 is faster; A/A = its second copy over its first)");
            Console.WriteLine($"load average at end: {CpuBench.LoadAverage()}");
            Console.WriteLine($"SUMMARY tunings d={Options.FormatSize(o.Length)} ratio={o.Ratio} threads={o.Threads} cpu=\"{CpuInfo.Description}\" triad={CpuBench.Median(samples[0]):F2} ms first=[{tunings[0].Key}]: {string.Join(", ", summary)}");
            return 0;
        }
        finally
        {
            foreach (var r in rows) r.Owner?.Dispose();
        }
    }
}
