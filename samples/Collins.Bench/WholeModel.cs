using System.Diagnostics;
using System.Reflection;
using Collins.Kernels;

namespace Collins.Bench;

/// <summary>
/// The whole-model step: one optimizer step over every tensor of <see cref="Gpt2Small"/> (148 tensors of 768 to 38.6M
/// entries, 124M parameters), where per-tensor dispatch and small-tensor overhead show, which a one-tensor bench hides.
/// Rows: a triad over one contiguous buffer of the same size (the streaming limit), dense AdamW over the 148 tensors (the bar),
/// and the two generated optimizers through their model-typed <c>Step</c>. Each row's floor is the bytes its kind must move,
/// summed over the tensors, at the triad's bandwidth; vs_floor = floor / measured.
/// </summary>
public static class WholeModelBench
{
    private const float LearningRate = 1e-6f;

    /// <summary>One row of the whole-model bench: its step and the bytes its kind must move (its floor at the triad's bandwidth).</summary>
    public sealed class Row(string name, string bytesFormula, double floorBytes, Action step)
    {
        public string Name { get; } = name;
        public string BytesFormula { get; } = bytesFormula;
        public double FloorBytes { get; } = floorBytes;
        public Action Step { get; } = step;
    }

    /// <summary>The model, its gradients and optimizers, and the rows that step them (shared by this bench and BenchmarkDotNet).</summary>
    public sealed class Setup : IDisposable
    {
        private readonly List<IDisposable> _owned = new();

        public Setup(int threads)
        {
            var model = new Gpt2Small();
            var specs = Gpt2Small.Rotation_R32.TensorSpecs;
            var parameters = specs.Select(s => (float[])typeof(Gpt2Small).GetField(s.Name, BindingFlags.Public | BindingFlags.Instance)!.GetValue(model)!).ToArray();
            var gradsA = new Gpt2Small.Rotation_R32.Gradients();
            var gradsB = new Gpt2Small.Rotation_R32_MeanB0.Gradients();
            Fill(parameters, 0.2f, 0f, seed: 1);
            Fill(gradsA.Tensors, 1e-3f, 1e-5f, seed: 2);
            for (int t = 0; t < specs.Count; t++) gradsA.Tensors[t].CopyTo(gradsB.Tensors[t], 0);
            TensorCount = specs.Count;
            ParameterCount = parameters.Sum(p => (long)p.Length);
            Smallest = parameters.Min(p => p.Length);
            Largest = parameters.Max(p => p.Length);

            var a = new Gpt2Small.Rotation_R32 { MaxThreads = threads };
            var b = new Gpt2Small.Rotation_R32_MeanB0 { MaxThreads = threads };
            var triad = new TriadKernel(new BenchBuffers(checked((int)ParameterCount)), threads);
            _owned.Add(a); _owned.Add(b); _owned.Add(triad);
            var m = parameters.Select(p => new float[p.Length]).ToArray();
            var v = parameters.Select(p => new float[p.Length]).ToArray();
            int adamStep = 0;
            Rows = new List<Row>
            {
                new("triad (limit), one buffer", "12·P", 12.0 * ParameterCount, triad.Step),
                new("dense AdamW, 148 tensors", "28·P", 28.0 * ParameterCount, () =>
                {
                    var s = StepScalars.For(++adamStep, LearningRate, 0.9, 0.999, 0.0);
                    for (int t = 0; t < parameters.Length; t++)
                        DenseAdamWCpu.Step(parameters[t], gradsA.Tensors[t], m[t], v[t], s, 0.9, 0.999, 1e-8f, threads);
                }),
                new("generated Rotation R32", "Σ sketched (12·d + 32·k) + Σ dense 28·d", Bytes(a), () => a.Step(LearningRate, model, gradsA)),
                new("generated Rotation R32 Mean β1=0", "Σ sketched (16·d + 16·k) + Σ dense 20·d", Bytes(b), () => b.Step(LearningRate, model, gradsB)),
            };
        }

        public IReadOnlyList<Row> Rows { get; }
        public int TensorCount { get; }
        public long ParameterCount { get; }
        public int Smallest { get; }
        public int Largest { get; }

        public void Dispose() { foreach (var d in _owned) d.Dispose(); }
    }

    // Bytes each kind must move per tensor (the formulas printed by the bench): a sketched Rotation tensor reads g and reads and
    // writes p (12 B/entry; β1 = 0 reads g again in phase 2: 16), plus per bucket its moments read and written and its two
    // phase-1 sums written and read (β1 ≠ 0: 32 B, β1 = 0: 16 B); a dense tensor is dense AdamW's 28 (β1 = 0: 20) B/entry.
    private static double Bytes(SketchedOptimizerBase opt)
    {
        double sum = 0;
        foreach (var plan in opt.Tensors)
        {
            bool hasM = plan.HasFirstMoment;
            sum += plan.IsDense ? (hasM ? 28.0 : 20.0) * plan.Length
                                : (hasM ? 12.0 : 16.0) * plan.Length + (hasM ? 32.0 : 16.0) * plan.Buckets;
        }
        return sum;
    }

    public static int Run(Options o)
    {
        Console.WriteLine($"Collins.Bench whole model: Gpt2Small (GPT-2 small shapes)  threads={o.Threads}/{Environment.ProcessorCount}  reps={o.Reps} (interleaved)");
        Console.WriteLine($"cpu {CpuInfo.Description}  runtime {Environment.Version}  load average at start: {CpuBench.LoadAverage()}");

        using var setup = new Setup(o.Threads);
        long total = setup.ParameterCount;
        Console.WriteLine($"{setup.TensorCount} tensors, {total:N0} parameters (smallest {setup.Smallest:N0}, largest {setup.Largest:N0})");
        var rows = setup.Rows.ToList();
        if (o.Filter is not null) rows.RemoveAll(r => !r.Name.StartsWith("triad", StringComparison.Ordinal) && !r.Name.StartsWith("dense", StringComparison.Ordinal)
                                                    && !r.Name.Contains(o.Filter, StringComparison.OrdinalIgnoreCase));

        // Warm-up (the first step allocates workspaces, JIT tiers up), then interleaved repetitions of single steps.
        foreach (var r in rows) { r.Step(); r.Step(); }
        var samples = rows.Select(_ => new double[o.Reps]).ToArray();
        for (int rep = 0; rep < o.Reps; rep++)
            for (int j = 0; j < rows.Count; j++)
            {
                int k = (j + rep) % rows.Count;
                long t0 = Stopwatch.GetTimestamp();
                rows[k].Step();
                samples[k][rep] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
            }
        var median = samples.Select(CpuBench.Median).ToArray();
        double bandwidth = rows[0].FloorBytes / (median[0] * 1e-3);   // bytes/s of the triad
        int adamw = rows.FindIndex(r => r.Name.StartsWith("dense", StringComparison.Ordinal));

        Console.WriteLine();
        Console.WriteLine($"| {"row",-34} | {"median ms",9} | {"min ms",8} | {"floor ms",8} | {"vs_floor",8} | {"vs_adamw",8} |");
        Console.WriteLine($"|{new string('-', 36)}|{new string('-', 11)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 10)}|");
        var summary = new List<string>();
        for (int k = 0; k < rows.Count; k++)
        {
            double floorMs = rows[k].FloorBytes / bandwidth * 1e3;
            double vsFloor = floorMs / median[k];
            string vsA = adamw >= 0 ? (median[adamw] / median[k]).ToString("F2") : "n/a";
            Console.WriteLine($"| {rows[k].Name,-34} | {median[k],9:F2} | {samples[k].Min(),8:F2} | {floorMs,8:F2} | {vsFloor,8:F2} | {vsA,8} |");
            if (k > 0) summary.Add($"{rows[k].Name} {median[k]:F1} ms vs_floor={vsFloor:F2}" + (k != adamw && adamw >= 0 ? $" vs_adamw={vsA}" : ""));
        }
        Console.WriteLine();
        Console.WriteLine("bytes each row must move (P parameters; per tensor d entries, k buckets), at the triad's bandwidth = its floor:");
        foreach (var r in rows) Console.WriteLine($"  {r.Name,-34} {r.BytesFormula} = {r.FloorBytes / 1e6:F0} MB");

        // A step allocates nothing after the first.
        foreach (var r in rows.Skip(1))
        {
            long before = GC.GetTotalAllocatedBytes(true);
            for (int i = 0; i < 3; i++) r.Step();
            Console.WriteLine($"  {r.Name,-34} allocated {(GC.GetTotalAllocatedBytes(true) - before) / 3.0:F0} B/step");
        }
        Console.WriteLine($"load average at end: {CpuBench.LoadAverage()}");
        Console.WriteLine($"SUMMARY whole-model gpt2-small P={total} threads={o.Threads} cpu=\"{CpuInfo.Description}\" triad {median[0]:F1} ms ({bandwidth / 1e9:F1} GB/s): {string.Join("; ", summary)}");
        return 0;
    }

    private static void Fill(float[][] tensors, float scale, float offset, int seed)
    {
        uint x = (uint)seed * 2654435761u + 1;
        foreach (var t in tensors)
            for (int i = 0; i < t.Length; i++)
            {
                x ^= x << 13; x ^= x >> 17; x ^= x << 5;
                t[i] = ((x >> 8) * (1f / (1 << 24)) - 0.5f) * scale + offset;
            }
    }
}
