using System.Diagnostics;
using System.Linq.Expressions;
using System.Reflection;
using ILGPU;
using ILGPU.Runtime;

namespace Collins.Bench;

/// <summary>
/// --gpu --whole-model: one device step over every tensor of <see cref="Gpt2Small"/> (148 tensors, 124M parameters; --model tiny:
/// <see cref="Gpt2Tiny"/>, the same structure at a toy size, to check the path on ILGPU's CPU accelerator) through each
/// generated optimizer's device constructor and its <c>Step(float, ArrayView&lt;float&gt; Wte, ArrayView&lt;float&gt; WteGrad, …)</c>
/// (one parameter/gradient pair per tensor, bound once by reflection into an allocation-free delegate). The parameters and the
/// gradients are one device buffer each, every tensor a sub-view (starts 256-byte aligned); every row steps the same buffers.
/// References: a device copy and an ILGPU triad over the whole buffer, and ILGPU dense AdamW launched once per tensor (148 launches),
/// the whole-model CPU bench's bar. B/param of an optimizer row = Σ over its tensors of the kind's floor bytes (<see cref="Floors.ModelBytes"/>) / P.
/// </summary>
public static class GpuWholeModel
{
    private const float LearningRate = 1e-6f;
    private const int AlignFloats = 64;

    /// <summary>A generated model step over per-tensor views, in declaration order.</summary>
    public delegate StepOutcome ModelViewStep(float learningRate, ArrayView<float>[] parameters, ArrayView<float>[] gradients);

    /// <summary>The generated optimizers of each model (nested types of the same names), named as the whole-model CPU bench names them.</summary>
    private static readonly (string Row, string Type)[] Optimizers =
    [
        (WholeModelBench.RowNames[2], nameof(Gpt2Small.Rotation_R32)),
        (WholeModelBench.RowNames[3], nameof(Gpt2Small.Rotation_R32_MeanB0)),
        (WholeModelBench.RowNames[4], nameof(Gpt2Small.Factored_B0)),
        (WholeModelBench.RowNames[5], nameof(Gpt2Small.Factored_Q8)),
        (WholeModelBench.RowNames[6], nameof(Gpt2Small.Factored_Q4)),
        (WholeModelBench.RowNames[7], nameof(Gpt2Small.Factored_ClipAll)),
    ];

    /// <summary>The models --model names: GPT-2 small (the benchmark) and its toy-sized twin (the CPU accelerator's check).</summary>
    public static Type? ModelFor(string name) => name switch
    {
        "gpt2-small" => typeof(Gpt2Small),
        "tiny" => typeof(Gpt2Tiny),
        _ => null,
    };

    private static T Static<T>(Type type, string property)
        => (T)(type.GetProperty(property, BindingFlags.Public | BindingFlags.Static)?.GetValue(null)
               ?? throw new InvalidOperationException($"{type.Name} has no public static {property}"));

    public static int Run(Options o, Accelerator acc)
    {
        var model = ModelFor(o.Model);
        if (model is null) { Console.Error.WriteLine($"error: --model must be gpt2-small or tiny, not '{o.Model}'"); return 2; }
        Type OptimizerType(string name) => model.GetNestedType(name, BindingFlags.Public)
                                            ?? throw new InvalidOperationException($"{model.Name}.{name} was not generated");
        var specs = Static<IReadOnlyList<TensorSpec>>(OptimizerType(Optimizers[0].Type), "TensorSpecs");
        int n = specs.Count;
        var lengths = specs.Select(s => s.Shape.Aggregate(1, (a, b) => checked(a * b))).ToArray();
        var offsets = new long[n];
        long total = 0, parameters = 0;
        for (int i = 0; i < n; i++)
        {
            offsets[i] = total;
            total += (lengths[i] + AlignFloats - 1) / AlignFloats * AlignFloats;
            parameters += lengths[i];
        }
        bool Wanted(string name) => o.Filter is null || name.Contains(o.Filter, StringComparison.OrdinalIgnoreCase);
        var chosen = Optimizers.Where(x => Wanted(x.Row))
                               .Select(x => (Name: x.Row, Type: OptimizerType(x.Type), Settings: Static<OptimizerSettings>(OptimizerType(x.Type), "DefaultSettings")))
                               .ToArray();

        // p, g, the copy target and dense AdamW's m and v, plus every chosen optimizer's state and workspace (GpuRows.DeviceBytes).
        long needed = 4L * GpuRows.SharedFloatsPerParameter * total
                      + chosen.Sum(x => specs.Sum(s => GpuRows.DeviceBytes(new TensorPlan(s, x.Settings), x.Settings)));
        Console.WriteLine($"Collins.Bench --gpu --whole-model  device: {acc.Name} ({acc.AcceleratorType}), memory {acc.MemorySize / (1 << 20):N0} MiB, reps={o.Reps} (interleaved)");
        Console.WriteLine($"{model.Name}{(model == typeof(Gpt2Small) ? " (GPT-2 small shapes)" : " (a toy model: checks the code path only)")}: {n} tensors, {parameters:N0} parameters (smallest {lengths.Min():N0}, largest {lengths.Max():N0}); device memory for every row at once ≤ {needed / (1 << 20):N0} MiB");
        if (needed * GpuRows.Headroom > acc.MemorySize) { Console.Error.WriteLine($"error: the whole model needs {needed / (1 << 20):N0} MiB (+25%), the device has {acc.MemorySize / (1 << 20):N0}"); return 3; }

        // The copy and the triad run over the whole buffer, padding included (none for these shapes: every length is a multiple of 64).
        using var p = acc.Allocate1D<float>(total);
        using var g = acc.Allocate1D<float>(total);
        using var copy = acc.Allocate1D<float>(total);
        using var m = acc.Allocate1D<float>(total);
        using var v = acc.Allocate1D<float>(total);
        var host = new BenchBuffers(checked((int)total));
        p.View.CopyFromCPU(host.Parameters);
        g.View.CopyFromCPU(host.Gradient);
        m.MemSetToZero(); v.MemSetToZero();
        acc.Synchronize();
        ArrayView<float>[] Views(MemoryBuffer1D<float, Stride1D.Dense> buffer)
            => Enumerable.Range(0, n).Select(i => (ArrayView<float>)buffer.View.SubView(offsets[i], lengths[i])).ToArray();
        ArrayView<float>[] ps = Views(p), gs = Views(g), ms = Views(m), vs = Views(v);

        var triad = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, float>(GpuBench.TriadKernel);
        var adamw = acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, GpuBench.DenseScalars>(GpuBench.AdamWKernel);
        int t = 0;
        var rows = new List<GpuBench.Row>
        {
            new("device copy (d2d), one buffer", 8.0 * total / parameters, false, () => p.View.CopyTo(copy.View), null, 0),
            new("triad (limit), one buffer", Floors.Triad.BytesPerParam * total / parameters, false, () => triad((int)total, p.View, g.View, 1e-9f), null, 0),
            new($"dense AdamW (ILGPU), {n} tensors", Floors.DenseAdamW(beta1Zero: false).BytesPerParam, false, () =>
            {
                t = t % 1000 + 1;
                var s = GpuBench.DenseScalars.For(t);
                for (int i = 0; i < n; i++) adamw(ps[i].IntLength, ps[i], gs[i], ms[i], vs[i], s);
            }, null, 0),
        };
        try
        {
            foreach (var (name, type, _) in chosen)
            {
                var ctor = type.GetConstructor([typeof(Accelerator)])
                           ?? throw new InvalidOperationException($"{type.Name}: no device constructor (Accelerator)");
                long t0 = Stopwatch.GetTimestamp();
                var opt = (SketchedOptimizerBase)ctor.Invoke([acc]);
                double seconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                for (int i = 0; i < n; i++)
                    if (opt.Tensors[i].Name != specs[i].Name || opt.Tensors[i].Length != lengths[i])
                        throw new InvalidOperationException($"{type.Name}: tensor {i} is '{opt.Tensors[i].Name}' ({opt.Tensors[i].Length}), expected '{specs[i].Name}' ({lengths[i]})");
                var step = BindViewStep(opt, specs);
                rows.Add(new(name, Floors.ModelBytes(opt.Tensors, opt.Settings) / parameters, true, () =>
                {
                    var outcome = step(LearningRate, ps, gs);
                    if (outcome != StepOutcome.Applied) throw new InvalidOperationException($"{name}: {outcome}");
                }, opt, seconds));
            }

            var result = GpuBench.Measure(acc, rows, o.Reps, o.MinSampleMs);
            GpuBench.Print(rows, result, parameters, "P");
            Console.WriteLine("B/param: an optimizer's = Σ over its tensors of the kind's floor bytes (Floors.ModelBytes) / P:");
            foreach (var r in rows.Where(r => r.Optimizer is not null))
                Console.WriteLine($"  {r.Name,-44} {r.BytesPerParam * parameters / 1e6:F0} MB per step");
            Console.WriteLine(GpuBench.Summary($"gpu whole-model {o.Model} P={parameters}", rows, result));
            return 0;
        }
        finally
        {
            foreach (var r in rows) r.Optimizer?.Dispose();
        }
    }

    /// <summary>
    /// Binds the generated device <c>Step</c> of <paramref name="optimizer"/> (a float, then for each tensor its parameters and its
    /// gradient, named <c>X</c> and <c>XGrad</c> as <paramref name="specs"/> declares them) into a delegate over two arrays of views.
    /// </summary>
    public static ModelViewStep BindViewStep(SketchedOptimizerBase optimizer, IReadOnlyList<TensorSpec> specs)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(specs);
        var type = optimizer.GetType();
        int n = specs.Count;
        var method = type.GetMethods(BindingFlags.Public | BindingFlags.Instance).SingleOrDefault(mi =>
                         mi.Name == "Step" && mi.ReturnType == typeof(StepOutcome) && mi.GetParameters() is var pars && pars.Length == 1 + 2 * n
                         && pars[0].ParameterType == typeof(float) && pars.Skip(1).All(x => x.ParameterType == typeof(ArrayView<float>)))
                     ?? throw new InvalidOperationException($"{type.Name} has no device Step(float, {2 * n} × ArrayView<float>)");
        var parameters = method.GetParameters();
        for (int i = 0; i < n; i++)
            if (parameters[1 + 2 * i].Name != specs[i].Name || parameters[2 + 2 * i].Name != specs[i].Name + "Grad")
                throw new InvalidOperationException($"{type.Name}.Step: parameters {1 + 2 * i} and {2 + 2 * i} are '{parameters[1 + 2 * i].Name}', '{parameters[2 + 2 * i].Name}', expected '{specs[i].Name}', '{specs[i].Name}Grad'");
        var lr = Expression.Parameter(typeof(float), "learningRate");
        var pa = Expression.Parameter(typeof(ArrayView<float>[]), "parameters");
        var ga = Expression.Parameter(typeof(ArrayView<float>[]), "gradients");
        var args = new List<Expression>(1 + 2 * n) { lr };
        for (int i = 0; i < n; i++)
        {
            args.Add(Expression.ArrayIndex(pa, Expression.Constant(i)));
            args.Add(Expression.ArrayIndex(ga, Expression.Constant(i)));
        }
        var call = Expression.Call(Expression.Constant(optimizer, type), method, args);
        return Expression.Lambda<ModelViewStep>(call, lr, pa, ga).Compile();
    }
}
