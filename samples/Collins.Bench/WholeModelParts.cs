using System.Diagnostics;
using Collins.Kernels;

namespace Collins.Bench;

/// <summary>
/// Where the whole-model step loses against one tensor (<c>--whole-model --parts</c>): for a setting, the run-time engine
/// (<see cref="CountSketchAdam"/>, the generated optimizers' engine) steps the 148 tensors of <see cref="Gpt2Small"/>, one tensor
/// of the same 124M entries ([P/768, 768]), and the model's parts on their own: the token embedding, the 48 block matrices with the
/// position embedding, the 98 vectors (biases and layer norms). Σ parts − whole model is what the tensors cost together beyond alone (none: the parts add up);
/// whole model − one tensor is what cutting the model into 148 tensors costs. Every case steps slices of one pair of buffers.
/// </summary>
public static class WholeModelParts
{
    private const float LearningRate = 1e-6f;

    private static readonly (string Name, OptimizerSettings Settings)[] Kinds =
    [
        ("Rotation R32", new OptimizerSettings { Ratio = 32 }),
        ("Rotation R32 Mean β1=0", new OptimizerSettings { Ratio = 32, Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean }),
        ("Factored β1=0", new OptimizerSettings { Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored }),
    ];

    public static int Run(Options o)
    {
        Console.WriteLine($"Collins.Bench whole model, parts: Gpt2Small shapes through CountSketchAdam  threads={o.Threads}/{Environment.ProcessorCount}  reps={o.Reps} (interleaved)");
        Console.WriteLine($"cpu {CpuInfo.Description}  runtime {Environment.Version}  load average at start: {CpuBench.LoadAverage()}");
        var specs = Gpt2Small.Rotation_R32.TensorSpecs;
        long total = specs.Sum(s => (long)s.Shape.Aggregate(1, (a, x) => a * x));
        using var triad = new TriadKernel(new BenchBuffers(checked((int)total)), o.Threads);
        var buffers = new BenchBuffers(checked((int)total), seed: 3);
        int width = Gpt2Small.Width;
        var parts = new (string Name, TensorSpec[] Specs)[]
        {
            ("whole model, 148 tensors", specs.ToArray()),
            ($"one tensor [{total / width}, {width}]", [new TensorSpec("All", [checked((int)(total / width)), width])]),
            ("part: token embedding", specs.Where(s => s.Name == "Wte").ToArray()),
            ($"part: {specs.Count(s => s.Shape.Length == 2) - 1} other matrices", specs.Where(s => s.Shape.Length == 2 && s.Name != "Wte").ToArray()),
            ($"part: {specs.Count(s => s.Shape.Length == 1)} vectors", specs.Where(s => s.Shape.Length == 1).ToArray()),
        };
        var kinds = Kinds.Where(k => o.Filter is null || k.Name.Contains(o.Filter, StringComparison.OrdinalIgnoreCase)).ToArray();
        var cases = new List<(string Kind, string Part, Action Step)> { ("", "triad (limit), one buffer", triad.Step) };
        var owned = new List<IDisposable>();
        foreach (var (kind, settings) in kinds)
            foreach (var (part, partSpecs) in parts)
            {
                var opt = new CountSketchAdam(settings, partSpecs) { MaxThreads = o.Threads };
                owned.Add(opt);
                // Consecutive slices of the shared buffers, in declaration order.
                var p = new List<Memory<float>>(); var g = new List<ReadOnlyMemory<float>>();
                int offset = 0;
                foreach (var plan in opt.Tensors)
                {
                    p.Add(buffers.Parameters.AsMemory(offset, plan.Length));
                    g.Add(buffers.Gradient.AsMemory(offset, plan.Length));
                    offset += plan.Length;
                }
                cases.Add((kind, part, () => opt.Step(LearningRate, p, g)));
            }
        try
        {
            var samples = CpuBench.Interleaved(cases.Select(c => c.Step).ToArray(), o.Reps);
            var median = samples.Select(CpuBench.Median).ToArray();
            Console.WriteLine();
            Console.WriteLine($"| {"kind",-22} | {"case",-28} | {"median ms",9} | {"min ms",8} |");
            Console.WriteLine($"|{new string('-', 24)}|{new string('-', 30)}|{new string('-', 11)}|{new string('-', 10)}|");
            for (int k = 0; k < cases.Count; k++)
                Console.WriteLine($"| {cases[k].Kind,-22} | {cases[k].Part,-28} | {median[k],9:F2} | {samples[k].Min(),8:F2} |");
            Console.WriteLine();
            for (int i = 0; i < kinds.Length; i++)
            {
                int b = 1 + i * parts.Length;
                double whole = median[b], one = median[b + 1], sum = median[b + 2] + median[b + 3] + median[b + 4];
                Console.WriteLine($"{kinds[i].Name}: whole model {whole:F2} ms, Σ parts {sum:F2} ms, one tensor {one:F2} ms: the 148 tensors cost {whole - one:F2} ms ({(whole / one - 1) * 100:F0} %) more than one");
            }
            Console.WriteLine($"load average at end: {CpuBench.LoadAverage()}");
            return 0;
        }
        finally
        {
            foreach (var d in owned) d.Dispose();
        }
    }
}
