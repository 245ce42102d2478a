using System.Reflection;
using System.Reflection.Emit;
using Collins;
using Collins.Kernels;

namespace TinyLm;

/// <summary>What the trainer needs from an optimizer: one step over every tensor, and its state size.</summary>
public interface ITrainerOptimizer
{
    /// <summary>Configuration name shown in the results (e.g. "AdamW", "C32").</summary>
    string Name { get; }
    /// <summary>Which code does the step: "dense AdamW", "generated", "runtime CountSketchAdam", "sample reference".</summary>
    string Implementation { get; }
    /// <summary>Bytes of optimizer state.</summary>
    long StateBytes { get; }
    /// <summary>One step: parameters[i] -= update(gradients[i]), tensors in <see cref="ModelConfig.Specs"/> order.</summary>
    void Step(float learningRate, float[][] parameters, float[][] gradients);
}

/// <summary>Dense AdamW (8 B/param) on the library's vectorised dense kernel: the baseline.</summary>
public sealed class DenseAdamW : ITrainerOptimizer
{
    private readonly float[][] _m, _v;
    private readonly double _beta1, _beta2, _eps, _wd;
    private int _t;

    public DenseAdamW(IReadOnlyList<TensorSpec> tensors, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0, string name = "AdamW")
    {
        Name = name;
        _beta1 = beta1; _beta2 = beta2; _eps = epsilon; _wd = weightDecay;
        _m = tensors.Select(t => new float[t.Shape.Aggregate(1, (a, b) => a * b)]).ToArray();
        _v = tensors.Select(t => new float[t.Shape.Aggregate(1, (a, b) => a * b)]).ToArray();
    }

    public string Name { get; }
    public string Implementation => "dense AdamW (Collins.Kernels.DenseAdamWCpu)";
    public long StateBytes => _m.Sum(m => 8L * m.Length);

    public void Step(float learningRate, float[][] parameters, float[][] gradients)
    {
        var s = StepScalars.For(++_t, learningRate, _beta1, _beta2, _wd);
        Kernels.For(parameters.Length, i =>
            DenseAdamWCpu.Step(parameters[i], gradients[i], _m[i], _v[i], s, (float)_beta1, (float)_beta2, (float)_eps));
    }
}

/// <summary>
/// A straightforward Count-Sketch Adam written from the algorithm in DEVELOPERS.md over the
/// library's <see cref="TensorPlan"/> hashes (the same h1/h2 as every Collins optimizer). The
/// trainer uses it only when neither a generated variant nor the run-time
/// <see cref="CountSketchAdam"/> step is available, and says so in the results.
/// </summary>
public sealed class ReferenceCountSketchAdam : ITrainerOptimizer
{
    private readonly OptimizerSettings _s;
    private readonly TensorPlan[] _plans;
    private readonly float[][] _m, _v, _sumM, _sumV, _invSqrtOcc;
    private int _t;

    public ReferenceCountSketchAdam(string name, OptimizerSettings settings, IReadOnlyList<TensorSpec> tensors)
    {
        Name = name;
        _s = settings;
        _plans = tensors.Select(t => new TensorPlan(t, settings)).ToArray();
        _m = _plans.Select(p => new float[p.HasFirstMoment ? p.Buckets : 0]).ToArray();
        _v = _plans.Select(p => new float[p.Buckets]).ToArray();
        _sumM = _plans.Select(p => new float[p.IsDense ? 0 : p.Buckets]).ToArray();
        _sumV = _plans.Select(p => new float[p.IsDense ? 0 : p.Buckets]).ToArray();
        _invSqrtOcc = _plans.Select(p =>
            p.IsDense || p.SecondMoment == SecondMomentEstimate.Sum ? Array.Empty<float>()
            : p.Occupancy().Select(o => o == 0 ? 0f : 1f / MathF.Sqrt(o)).ToArray()).ToArray();
    }

    public string Name { get; }
    public string Implementation => "sample reference Count-Sketch Adam (TensorPlan hashes)";
    public long StateBytes => _plans.Sum(p => p.StateFloats * sizeof(float));

    public void Step(float learningRate, float[][] parameters, float[][] gradients)
    {
        var sc = StepScalars.For(++_t, learningRate, _s.Beta1, _s.Beta2, _s.WeightDecay);
        float b1 = (float)_s.Beta1, b2 = (float)_s.Beta2, eps = (float)_s.Epsilon;
        Kernels.For(_plans.Length, i =>
        {
            var plan = _plans[i];
            float[] p = parameters[i], g = gradients[i], m = _m[i], v = _v[i];
            if (plan.IsDense) { DenseAdamWCpu.Step(p, g, m, v, sc, b1, b2, eps); return; }
            float[] sm = _sumM[i], sv = _sumV[i];
            Array.Clear(sm); Array.Clear(sv);
            bool hasM = plan.HasFirstMoment;
            for (int j = 0; j < p.Length; j++)
            {
                int b = plan.Bucket(j);
                float gj = g[j];
                if (hasM) sm[b] += plan.Sign(j) * gj;
                sv[b] += gj * gj;
            }
            for (int b = 0; b < v.Length; b++)
            {
                v[b] = b2 * v[b] + (1 - b2) * sv[b];
                if (hasM) m[b] = b1 * m[b] + (1 - b1) * sm[b];
            }
            var occ = _invSqrtOcc[i];
            for (int j = 0; j < p.Length; j++)
            {
                int b = plan.Bucket(j);
                float mhat = hasM ? plan.Sign(j) * m[b] * sc.InvBiasCorrection1 : g[j];
                float denom = MathF.Sqrt(v[b]) * sc.InvSqrtBiasCorrection2;
                if (occ.Length != 0) denom *= occ[b];
                p[j] = p[j] * sc.Decay - sc.LearningRate * mhat / (denom + eps);
            }
        });
    }
}

/// <summary>
/// Adapts any optimizer object with a generated-style step, <c>Step(float, Span&lt;float&gt;, ReadOnlySpan&lt;float&gt;, …)</c>
/// (one pair per tensor), to <see cref="ITrainerOptimizer"/>. The argument spreading is emitted
/// once per type as IL, so adding a generated variant needs no hand-written 50-argument call.
/// </summary>
public sealed class SpanStepOptimizer : ITrainerOptimizer
{
    private readonly object _optimizer;
    private readonly Action<object, float, float[][], float[][]> _step;
    private readonly PropertyInfo? _stateBytes;

    public SpanStepOptimizer(string name, object optimizer, int tensorCount, string implementation = "generated")
    {
        Name = name;
        Implementation = implementation;
        _optimizer = optimizer;
        _step = Compile(optimizer.GetType(), tensorCount);
        _stateBytes = optimizer.GetType().GetProperty("StateBytes", typeof(long));
    }

    public string Name { get; }
    public string Implementation { get; }
    public long StateBytes => _stateBytes is null ? -1 : (long)_stateBytes.GetValue(_optimizer)!;
    public object Inner => _optimizer;

    public void Step(float learningRate, float[][] parameters, float[][] gradients) => _step(_optimizer, learningRate, parameters, gradients);

    /// <summary>The type's public instance <c>Step(float, Span, ReadOnlySpan, …)</c> with <paramref name="tensorCount"/> pairs, or null.</summary>
    public static MethodInfo? FindStep(Type type, int tensorCount)
    {
        foreach (var mi in type.GetMethods(BindingFlags.Public | BindingFlags.Instance))
        {
            if (mi.Name != "Step") continue;
            var ps = mi.GetParameters();
            if (ps.Length != 1 + 2 * tensorCount || ps[0].ParameterType != typeof(float)) continue;
            bool ok = true;
            for (int i = 0; i < tensorCount && ok; i++)
                ok = ps[1 + 2 * i].ParameterType == typeof(Span<float>) && ps[2 + 2 * i].ParameterType == typeof(ReadOnlySpan<float>);
            if (ok) return mi;
        }
        return null;
    }

    private static Action<object, float, float[][], float[][]> Compile(Type type, int tensorCount)
    {
        var step = FindStep(type, tensorCount)
            ?? throw new ArgumentException($"{type} has no Step(float, Span<float>, ReadOnlySpan<float>, …) over {tensorCount} tensors.");
        var dm = new DynamicMethod("SpreadStep_" + type.Name, typeof(void),
            [typeof(object), typeof(float), typeof(float[][]), typeof(float[][])], typeof(SpanStepOptimizer).Module, skipVisibility: true);
        var il = dm.GetILGenerator();
        var spanCtor = typeof(Span<float>).GetConstructor([typeof(float[])])!;
        var roCtor = typeof(ReadOnlySpan<float>).GetConstructor([typeof(float[])])!;
        il.Emit(OpCodes.Ldarg_0);
        il.Emit(OpCodes.Castclass, type);
        il.Emit(OpCodes.Ldarg_1);
        for (int i = 0; i < tensorCount; i++)
        {
            il.Emit(OpCodes.Ldarg_2); il.Emit(OpCodes.Ldc_I4, i); il.Emit(OpCodes.Ldelem_Ref); il.Emit(OpCodes.Newobj, spanCtor);
            il.Emit(OpCodes.Ldarg_3); il.Emit(OpCodes.Ldc_I4, i); il.Emit(OpCodes.Ldelem_Ref); il.Emit(OpCodes.Newobj, roCtor);
        }
        il.Emit(OpCodes.Callvirt, step);
        if (step.ReturnType != typeof(void)) il.Emit(OpCodes.Pop);
        il.Emit(OpCodes.Ret);
        return dm.CreateDelegate<Action<object, float, float[][], float[][]>>();
    }
}

/// <summary>Adapts the run-time <see cref="CountSketchAdam"/> (array step) to <see cref="ITrainerOptimizer"/>.</summary>
public sealed class RuntimeCountSketchAdam : ITrainerOptimizer
{
    private readonly CountSketchAdam _inner;
    private readonly Action<float, float[][], float[][]> _step;

    private RuntimeCountSketchAdam(string name, CountSketchAdam inner, Action<float, float[][], float[][]> step)
    {
        Name = name; _inner = inner; _step = step;
    }

    public string Name { get; }
    public string Implementation => "runtime Collins.CountSketchAdam";
    public long StateBytes => _inner.StateBytes;
    public void Step(float learningRate, float[][] parameters, float[][] gradients) => _step(learningRate, parameters, gradients);

    /// <summary>The run-time optimizer, or null while <c>CountSketchAdam.Step(float, float[][], float[][])</c> does not exist.</summary>
    public static RuntimeCountSketchAdam? TryCreate(string name, OptimizerSettings settings, IReadOnlyList<TensorSpec> tensors)
    {
        var mi = typeof(CountSketchAdam).GetMethod("Step", BindingFlags.Public | BindingFlags.Instance, [typeof(float), typeof(float[][]), typeof(float[][])]);
        if (mi is null) return null;
        var inner = new CountSketchAdam(settings, tensors);
        var call = (Func<float, float[][], float[][], StepOutcome>)Delegate.CreateDelegate(typeof(Func<float, float[][], float[][], StepOutcome>), inner, mi, throwOnBindFailure: false)!;
        if (call is null) return null;
        return new RuntimeCountSketchAdam(name, inner, (lr, p, g) => call(lr, p, g));
    }
}

/// <summary>
/// Every optimizer the trainer knows, by name: "AdamW", and one Collins variant per
/// <c>[SketchedOptimizer(Name = …)]</c> on <see cref="TinyLmModel"/>. A variant uses the
/// generated nested type <c>TinyLmModel.{Name}</c> when the generator has emitted it, else the run-time
/// <see cref="CountSketchAdam"/>, else <see cref="ReferenceCountSketchAdam"/>; the results say which.
/// </summary>
public static class OptimizerCatalog
{
    /// <summary>The <c>[SketchedOptimizer]</c> attributes declared on the model, in declaration order.</summary>
    public static IReadOnlyList<SketchedOptimizerAttribute> Variants { get; } =
        typeof(TinyLmModel).GetCustomAttributes<SketchedOptimizerAttribute>(inherit: false).ToArray();

    public static IEnumerable<string> Names => new[] { "AdamW" }.Concat(Variants.Select(v => v.Name));

    /// <summary>
    /// The learning rate each named optimizer did best with in the 500-step sweep (grid 3e-4, 1e-3, 3e-3, 1e-2, seed 1;
    /// docs/tinylm/sweep/results.md), which the default run uses unless <c>--lr</c> is given, so that no optimizer of
    /// the default run is handicapped by a rate chosen for another.
    /// </summary>
    public static float SweepLearningRate(string name) => name switch
    {
        "C32Mean" or "C32MeanNoMomentum" => 3e-3f,   // R32 Rotation Mean b1=0.9 / b1=0.0
        _ => 1e-2f,                                   // AdamW, C1, C4, C8, C32, C32Universal, C32NoMomentum, C64
    };

    public static OptimizerSettings ToSettings(SketchedOptimizerAttribute a) => new()
    {
        Ratio = a.Ratio, Beta1 = a.Beta1, Beta2 = a.Beta2, Epsilon = a.Epsilon, WeightDecay = a.WeightDecay,
        Layout = a.Layout, SecondMoment = a.SecondMoment, Seed = a.Seed, DenseThreshold = a.DenseThreshold,
    };

    /// <summary>Creates the optimizer named <paramref name="name"/> for a model of <paramref name="config"/>.</summary>
    public static ITrainerOptimizer Create(string name, ModelConfig config)
    {
        var specs = config.Specs();
        if (name == "AdamW") return new DenseAdamW(specs);
        var attr = Variants.FirstOrDefault(v => v.Name == name)
            ?? throw new ArgumentException($"Unknown optimizer '{name}'. Known: {string.Join(", ", Names)}.");
        if (config == TinyLmModel.Config && TryCreateGenerated(name, specs.Count) is { } generated) return generated;
        return CreateRuntime(name, ToSettings(attr), specs);
    }

    /// <summary>The generated <c>TinyLmModel.{name}</c>, or null when the generator has not emitted it.</summary>
    public static ITrainerOptimizer? TryCreateGenerated(string name, int tensorCount)
    {
        var type = typeof(TinyLmModel).GetNestedType(name, BindingFlags.Public);
        if (type is null || type.IsAbstract || type.GetConstructor(Type.EmptyTypes) is null) return null;
        if (SpanStepOptimizer.FindStep(type, tensorCount) is null) return null;
        return new SpanStepOptimizer(name, Activator.CreateInstance(type)!, tensorCount, "generated TinyLmModel." + name);
    }

    /// <summary>A Collins optimizer from run-time settings (the sweep's path).</summary>
    public static ITrainerOptimizer CreateRuntime(string name, OptimizerSettings settings, IReadOnlyList<TensorSpec> specs) =>
        (ITrainerOptimizer?)RuntimeCountSketchAdam.TryCreate(name, settings, specs) ?? new ReferenceCountSketchAdam(name, settings, specs);
}
