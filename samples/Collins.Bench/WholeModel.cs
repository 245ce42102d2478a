using System.Diagnostics;
using System.Reflection;
using Collins.Kernels;

namespace Collins.Bench;

/// <summary>
/// The whole-model step: one optimizer step over every tensor of <see cref="Gpt2Small"/> (148 tensors of 768 to 38.6M
/// entries, 124M parameters), where per-tensor dispatch and small-tensor overhead show, which a one-tensor bench hides.
/// Rows: a triad over one contiguous buffer of the same size (the streaming limit), dense AdamW over the 148 tensors (the bar),
/// and the generated optimizers through their model-typed <c>Step</c>: Rotation at Ratio 32 (β1 = 0.9, and β1 = 0 with Mean) and
/// the factored second moment (β1 = 0, and with an 8-bit or 4-bit block-quantised first moment, stochastic rounding). Each row's
/// floor is the bytes its kind must move, the per-tensor floors of <see cref="Floors.Of"/> summed over the tensors
/// (<see cref="Floors.ModelBytes"/>), at the triad's bandwidth; vs_floor = floor / measured. Its pass floor is the same tensors'
/// floors formed as the one-tensor bench forms them, from floor kernels whose passes are the kind's (read, then scale; read, then
/// triad; …), run over all P parameters in the same interleaved rounds; vs_pass_floor = pass floor / measured. The first prices
/// a multi-pass kind's bytes at the one-pass triad's bandwidth, so it is the stricter of the two.
/// </summary>
public static class WholeModelBench
{
    private const float LearningRate = 1e-6f;

    /// <summary>The rows, in the order the bench prints them (BenchmarkDotNet's <c>WholeModelBenchmarks</c> offers the same).</summary>
    public static readonly IReadOnlyList<string> RowNames =
    [
        "triad (limit), one buffer", "dense AdamW, 148 tensors", "generated Rotation R32", "generated Rotation R32 Mean β1=0",
        "generated Factored β1=0", "generated Factored q8 sr", "generated Factored q4 sr", "generated Factored clip all",
    ];

    /// <summary>
    /// One row of the whole-model bench: its step, the bytes its kind must move (its floor at the triad's bandwidth), and each
    /// tensor's own floor (<see cref="Floors.Of"/>; empty for the triad), from which <see cref="PassFloorMs"/> forms the floor the
    /// one-tensor bench would give each tensor.
    /// </summary>
    public sealed class Row(string name, string bytesFormula, double floorBytes, Action step, IReadOnlyList<(long Length, Floor Floor)>? tensorFloors = null)
    {
        public string Name { get; } = name;
        public string BytesFormula { get; } = bytesFormula;
        public double FloorBytes { get; } = floorBytes;
        public Action Step { get; } = step;
        public IReadOnlyList<(long Length, Floor Floor)> TensorFloors { get; } = tensorFloors ?? [];

        /// <summary>
        /// Σ over the tensors of (d / P) · the tensor kind's floor from floor kernels run over all P parameters (their medians
        /// <paramref name="medianMsOf"/>, the triad's <paramref name="triadMs"/>): the one-tensor bench's per-kind floor, summed over
        /// the model. Null for a row without tensor floors or when a pass was not measured.
        /// </summary>
        public double? PassFloorMs(Func<string, double?> medianMsOf, double triadMs, long parameterCount)
            => Floors.ModelPassMilliseconds(TensorFloors, medianMsOf, triadMs, parameterCount);
    }

    /// <summary>
    /// The model, its gradients and optimizers, and the rows that step them (shared by this bench and BenchmarkDotNet). Only the rows
    /// <paramref name="wanted"/> keeps (by name; default all) are built: each generated row holds its own 498 MB of gradients.
    /// </summary>
    public sealed class Setup : IDisposable
    {
        private readonly List<IDisposable> _owned = new();

        public Setup(int threads, Func<string, bool>? wanted = null)
        {
            wanted ??= _ => true;
            var model = new Gpt2Small();
            var specs = Gpt2Small.Rotation_R32.TensorSpecs;
            var parameters = specs.Select(s => (float[])typeof(Gpt2Small).GetField(s.Name, BindingFlags.Public | BindingFlags.Instance)!.GetValue(model)!).ToArray();
            Fill(parameters, 0.2f, 0f, seed: 1);
            TensorCount = specs.Count;
            ParameterCount = parameters.Sum(p => (long)p.Length);
            Smallest = parameters.Min(p => p.Length);
            Largest = parameters.Max(p => p.Length);
            // Every row steps the same parameters with the same gradient values (each optimizer type has its own holder).
            float[][]? gradient = null;
            float[][] Gradient(float[][] tensors)
            {
                if (gradient is null) Fill(tensors, 1e-3f, 1e-5f, seed: 2);
                else for (int t = 0; t < tensors.Length; t++) gradient[t].CopyTo(tensors[t], 0);
                return gradient ??= tensors;
            }

            Gpt2Small.Rotation_R32.Gradients? shared = null;   // dense AdamW and Rotation R32 read the same holder
            Gpt2Small.Rotation_R32.Gradients Shared() => shared ??= Filled(new Gpt2Small.Rotation_R32.Gradients());
            Gpt2Small.Rotation_R32.Gradients Filled(Gpt2Small.Rotation_R32.Gradients g) { Gradient(g.Tensors); return g; }

            var rows = new List<Row>();
            void Add(string name, Func<Row> make)
            {
                if (!RowNames.Contains(name)) throw new InvalidOperationException($"row '{name}' is not in RowNames");
                if (wanted(name)) rows.Add(make());
            }
            T Own<T>(T optimizer) where T : SketchedOptimizerBase
            {
                optimizer.MaxThreads = threads;
                _owned.Add(optimizer);
                return optimizer;
            }
            static double Bytes(SketchedOptimizerBase opt) => Floors.ModelBytes(opt.Tensors, opt.Settings);
            static (long, Floor)[] TensorFloors(SketchedOptimizerBase opt) => opt.Tensors.Select(t => ((long)t.Length, Floors.Of(t, opt.Settings))).ToArray();

            Add(RowNames[0], () =>
            {
                var triad = new TriadKernel(new BenchBuffers(checked((int)ParameterCount)), threads);
                _owned.Add(triad);
                return new(RowNames[0], "12·P", 12.0 * ParameterCount, triad.Step);
            });
            Add(RowNames[1], () =>
            {
                var g = Shared().Tensors;
                var m = parameters.Select(p => new float[p.Length]).ToArray();
                var v = parameters.Select(p => new float[p.Length]).ToArray();
                int adamStep = 0;
                double bytes = parameters.Sum(p => Floors.DenseAdamW(beta1Zero: false).BytesPerParam * p.Length);
                return new(RowNames[1], "28·P", bytes, () =>
                {
                    var s = StepScalars.For(++adamStep, LearningRate, 0.9, 0.999, 0.0);
                    for (int t = 0; t < parameters.Length; t++)
                        DenseAdamWCpu.Step(parameters[t], g[t], m[t], v[t], s, 0.9, 0.999, 1e-8f, threads);
                }, parameters.Select(p => ((long)p.Length, Floors.DenseAdamW(beta1Zero: false))).ToArray());
            });
            Add(RowNames[2], () =>
            {
                var opt = Own(new Gpt2Small.Rotation_R32());
                var g = Shared();
                return new(RowNames[2], "Σ sketched (12·d + 32·k) + Σ dense 28·d", Bytes(opt), () => opt.Step(LearningRate, model, g), TensorFloors(opt));
            });
            // A generated optimizer's row: its own gradient holder, filled with the shared gradient, stepped through its model-typed Step.
            Row Generated<TO, TG>(int index, string formula, TO optimizer, TG gradients, float[][] tensors, Action<TO, TG> step) where TO : SketchedOptimizerBase
            {
                var opt = Own(optimizer);
                Gradient(tensors);
                return new(RowNames[index], formula, Bytes(opt), () => step(opt, gradients), TensorFloors(opt));
            }
            Add(RowNames[3], () => { var g = new Gpt2Small.Rotation_R32_MeanB0.Gradients(); return Generated(3, "Σ sketched (16·d + 16·k) + Σ dense 20·d", new Gpt2Small.Rotation_R32_MeanB0(), g, g.Tensors, (o, x) => o.Step(LearningRate, model, x)); });
            Add(RowNames[4], () => { var g = new Gpt2Small.Factored_B0.Gradients(); return Generated(4, "Σ factored (16·d + 16·(R+C)) + Σ dense 20·d", new Gpt2Small.Factored_B0(), g, g.Tensors, (o, x) => o.Step(LearningRate, model, x)); });
            Add(RowNames[5], () => { var g = new Gpt2Small.Factored_Q8.Gradients(); return Generated(5, "Σ factored (18·d + 8·d/B + 16·(R+C)) + Σ dense 28·d", new Gpt2Small.Factored_Q8(), g, g.Tensors, (o, x) => o.Step(LearningRate, model, x)); });
            Add(RowNames[6], () => { var g = new Gpt2Small.Factored_Q4.Gradients(); return Generated(6, "Σ factored (17·d + 8·d/B + 16·(R+C)) + Σ dense 28·d", new Gpt2Small.Factored_Q4(), g, g.Tensors, (o, x) => o.Step(LearningRate, model, x)); });
            Add(RowNames[7], () => { var g = new Gpt2Small.Factored_ClipAll.Gradients(); return Generated(7, "Σ factored (20·d + 16·(R+C)), vectors R = d, C = 1", new Gpt2Small.Factored_ClipAll(), g, g.Tensors, (o, x) => o.Step(LearningRate, model, x)); });
            Rows = rows;
        }

        public IReadOnlyList<Row> Rows { get; }
        public int TensorCount { get; }
        public long ParameterCount { get; }
        public int Smallest { get; }
        public int Largest { get; }

        public void Dispose() { foreach (var d in _owned) d.Dispose(); }
    }

    public static int Run(Options o)
    {
        Console.WriteLine($"Collins.Bench whole model: Gpt2Small (GPT-2 small shapes)  threads={o.Threads}/{Environment.ProcessorCount}  reps={o.Reps} (interleaved)");
        Console.WriteLine($"cpu {CpuInfo.Description}  runtime {Environment.Version}  tuning {Collins.Kernels.CpuTuning.Current}  load average at start: {CpuBench.LoadAverage()}");

        // The triad and dense AdamW always run (the bandwidth and the bar); --filter keeps the generated rows whose name contains it.
        using var setup = new Setup(o.Threads, name => o.Filter is null || name == RowNames[0] || name == RowNames[1]
                                                       || name.Contains(o.Filter, StringComparison.OrdinalIgnoreCase));
        long total = setup.ParameterCount;
        Console.WriteLine($"{setup.TensorCount} tensors, {total:N0} parameters (smallest {setup.Smallest:N0}, largest {setup.Largest:N0})");
        var rows = setup.Rows.ToList();

        // The floor kernels the rows' tensor floors are made of, over one buffer pair of all P parameters, timed with the rows: the
        // pass floor of a row is the one-tensor bench's floor of each tensor's kind (Floors.Of) at those kernels' speed, summed.
        var passKinds = rows.SelectMany(r => r.TensorFloors).SelectMany(t => t.Floor.Passes).Select(p => p.Row).ToHashSet();
        var passBuffers = passKinds.Count > 0 ? new BenchBuffers(checked((int)total)) : null;
        var passKernels = passBuffers is null ? [] : Enum.GetValues<LimitKernel.Kind>()
            .Where(k => k != LimitKernel.Kind.RandomScatterGather)
            .Select(k => new LimitKernel(passBuffers, o.Threads, k))
            .Where(k => passKinds.Contains(k.Name)).ToList();

        // Warm-up (the first step allocates workspaces, JIT tiers up), then interleaved repetitions of single steps.
        var samples = CpuBench.Interleaved(rows.Select(r => r.Step).Concat(passKernels.Select(k => (Action)k.Step)).ToArray(), o.Reps);
        var median = samples.Select(CpuBench.Median).ToArray();
        double bandwidth = rows[0].FloorBytes / (median[0] * 1e-3);   // bytes/s of the triad
        int adamw = rows.FindIndex(r => r.Name.StartsWith("dense", StringComparison.Ordinal));
        double? PassMedian(string row)
        {
            if (row == Floors.Triad.Row) return median[0];
            int i = passKernels.FindIndex(k => k.Name == row);
            return i >= 0 ? median[rows.Count + i] : null;
        }

        Console.WriteLine();
        Console.WriteLine($"| {"row",-34} | {"median ms",9} | {"min ms",8} | {"floor ms",8} | {"vs_floor",8} | {"pass floor ms",13} | {"vs_pass_floor",13} | {"vs_adamw",8} |");
        Console.WriteLine($"|{new string('-', 36)}|{new string('-', 11)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 10)}|{new string('-', 15)}|{new string('-', 15)}|{new string('-', 10)}|");
        var summary = new List<string>();
        for (int k = 0; k < rows.Count; k++)
        {
            double floorMs = rows[k].FloorBytes / bandwidth * 1e3;
            double vsFloor = floorMs / median[k];
            double? passMs = rows[k].PassFloorMs(PassMedian, median[0], total);
            string pass = passMs is double pm ? pm.ToString("F2") : "-", vsPass = passMs is double pm2 ? (pm2 / median[k]).ToString("F2") : "-";
            string vsA = adamw >= 0 ? (median[adamw] / median[k]).ToString("F2") : "n/a";
            Console.WriteLine($"| {rows[k].Name,-34} | {median[k],9:F2} | {samples[k].Min(),8:F2} | {floorMs,8:F2} | {vsFloor,8:F2} | {pass,13} | {vsPass,13} | {vsA,8} |");
            if (k > 0) summary.Add($"{rows[k].Name} {median[k]:F1} ms floor={floorMs:F1} ms vs_floor={vsFloor:F2}"
                                   + (passMs is double p3 ? $" pass_floor={p3:F1} ms vs_pass_floor={p3 / median[k]:F2}" : "")
                                   + (k != adamw && adamw >= 0 ? $" vs_adamw={vsA}" : ""));
        }
        if (passKernels.Count > 0)
        {
            Console.WriteLine("floor kernels over all P parameters (the passes of the pass floors): "
                              + string.Join(", ", passKernels.Select((pk, i) => $"{pk.Name} {median[rows.Count + i]:F2} ms")));
            Console.WriteLine("(floor: every byte at the one-buffer triad's bandwidth; pass floor: each tensor's one-tensor floor, its passes at these kernels' speed)");
        }
        foreach (var pk in passKernels) pk.Dispose();
        Console.WriteLine();
        Console.WriteLine("bytes each row must move (P parameters; per tensor d entries, k buckets), at the triad's bandwidth = its floor:");
        foreach (var r in rows) Console.WriteLine($"  {r.Name,-34} {r.BytesFormula} = {r.FloorBytes / 1e6:F0} MB");

        // A step allocates nothing after the first: a row that does fails the run (exit code 4).
        var allocating = new List<string>();
        foreach (var r in rows.Skip(1))
        {
            long before = GC.GetTotalAllocatedBytes(true);
            for (int i = 0; i < 3; i++) r.Step();
            double perStep = (GC.GetTotalAllocatedBytes(true) - before) / 3.0;
            Console.WriteLine($"  {r.Name,-34} allocated {perStep:F0} B/step");
            if (perStep > 0) allocating.Add(r.Name);
        }
        Console.WriteLine($"load average at end: {CpuBench.LoadAverage()}");
        Console.WriteLine($"SUMMARY whole-model gpt2-small P={total} threads={o.Threads} cpu=\"{CpuInfo.Description}\" tuning=\"{Collins.Kernels.CpuTuning.Current}\" triad {median[0]:F1} ms ({bandwidth / 1e9:F1} GB/s): {string.Join("; ", summary)}");
        if (allocating.Count == 0) return 0;
        Console.Error.WriteLine($"error: a step allocated: {string.Join(", ", allocating)}");
        return 4;
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
