using Collins;
using Collins.Kernels;
using M = TinyLm.TinyLmModel;

namespace TinyLm;

/// <summary>What the trainer needs from an optimizer: the buffers it steps, one step over every tensor, and its state size.</summary>
public interface ITrainerOptimizer
{
    /// <summary>Configuration name shown in the results (e.g. "AdamW", "C32").</summary>
    string Name { get; }
    /// <summary>Which code does the step: "dense AdamW …", "generated TinyLmModel.C32", "runtime Collins.CountSketchAdam", ….</summary>
    string Implementation { get; }
    /// <summary>Bytes of optimizer state.</summary>
    long StateBytes { get; }

    /// <summary>
    /// Steps the optimizer refused so far, changing nothing (a Collins optimizer's <see cref="SketchedOptimizerBase.SkippedSteps"/>:
    /// a non-finite gradient, or one whose squares overflow); 0 for the baselines, which apply every step.
    /// </summary>
    long SkippedSteps => 0;

    /// <summary>
    /// The parameter and gradient arrays, in <see cref="ModelConfig.Specs"/> order, that the trainer initialises, the backward
    /// pass fills and <see cref="Step"/> updates. By default fresh arrays; a generated optimizer hands out its model's members
    /// and its gradient holder's arrays (<see cref="GeneratedOptimizer{TOptimizer, TGradients}"/>).
    /// </summary>
    TensorBuffers BuffersFor(ModelConfig config) => TensorBuffers.Allocate(config.Specs());

    /// <summary>One step: parameters[i] -= update(gradients[i]), tensors in <see cref="ModelConfig.Specs"/> order.</summary>
    void Step(float learningRate, float[][] parameters, float[][] gradients);
}

/// <summary>One parameter and one gradient array per tensor, in <see cref="ModelConfig.Specs"/> order.</summary>
public sealed record TensorBuffers(float[][] Parameters, float[][] Gradients)
{
    /// <summary>Zeroed arrays of the tensors' lengths.</summary>
    public static TensorBuffers Allocate(IReadOnlyList<TensorSpec> specs) => new(
        specs.Select(s => new float[ModelConfig.Length(s)]).ToArray(),
        specs.Select(s => new float[ModelConfig.Length(s)]).ToArray());

    /// <summary>Whether <paramref name="parameters"/> and <paramref name="gradients"/> hold exactly these arrays (by reference).</summary>
    public bool AreThese(float[][] parameters, float[][] gradients)
    {
        if (parameters.Length != Parameters.Length || gradients.Length != Gradients.Length) return false;
        for (int i = 0; i < Parameters.Length; i++)
            if (!ReferenceEquals(parameters[i], Parameters[i]) || !ReferenceEquals(gradients[i], Gradients[i])) return false;
        return true;
    }

    /// <summary>Throws unless there is one parameter and one gradient array of each tensor's length.</summary>
    public static void CheckShapes(TensorBuffers buffers, IReadOnlyList<TensorSpec> specs)
    {
        if (buffers.Parameters.Length != specs.Count || buffers.Gradients.Length != specs.Count)
            throw new ArgumentException($"Expected {specs.Count} parameter and gradient arrays, got {buffers.Parameters.Length} and {buffers.Gradients.Length}.");
        for (int i = 0; i < specs.Count; i++)
        {
            int length = ModelConfig.Length(specs[i]);
            if (buffers.Parameters[i]?.Length != length || buffers.Gradients[i]?.Length != length)
                throw new ArgumentException($"Tensor {specs[i].Name}: expected {length} elements, got {buffers.Parameters[i]?.Length} (parameter) and {buffers.Gradients[i]?.Length} (gradient).");
        }
    }
}

/// <summary>
/// Dense AdamW (8 B/param) on the library's vectorised dense kernel: the baseline. With <c>clipNorm</c> &gt; 0 it first clips
/// the gradients by their global norm as PyTorch's <c>clip_grad_norm_</c> does (‖g‖ over every tensor in double; when it
/// exceeds the bound, every gradient is scaled in place by bound / (‖g‖ + 1e-6)): "AdamWClip", the usual practice for transformers.
/// </summary>
public sealed class DenseAdamW : ITrainerOptimizer
{
    private readonly float[][] _m, _v;
    private readonly double _beta1, _beta2, _eps, _wd, _clipNorm;
    private int _t;

    public DenseAdamW(IReadOnlyList<TensorSpec> tensors, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0,
                      string name = "AdamW", double clipNorm = 0)
    {
        if (!(clipNorm >= 0) || double.IsInfinity(clipNorm)) throw new ArgumentOutOfRangeException(nameof(clipNorm), clipNorm, "The clipping bound must be finite and >= 0 (0: off).");
        Name = name;
        _beta1 = beta1; _beta2 = beta2; _eps = epsilon; _wd = weightDecay; _clipNorm = clipNorm;
        _m = tensors.Select(t => new float[t.Shape.Aggregate(1, (a, b) => a * b)]).ToArray();
        _v = tensors.Select(t => new float[t.Shape.Aggregate(1, (a, b) => a * b)]).ToArray();
    }

    public string Name { get; }
    public string Implementation => "dense AdamW (Collins.Kernels.DenseAdamWCpu)" + (_clipNorm > 0 ? $", global gradient-norm clipping at {_clipNorm:G3}" : "");
    public long StateBytes => _m.Sum(m => 8L * m.Length);

    /// <summary>The global norm of the last step's gradients before clipping (NaN before the first step or without clipping).</summary>
    public double LastGradientNorm { get; private set; } = double.NaN;

    public void Step(float learningRate, float[][] parameters, float[][] gradients)
    {
        if (_clipNorm > 0) Clip(gradients);
        var s = StepScalars.For(++_t, learningRate, _beta1, _beta2, _wd);
        Kernels.For(parameters.Length, i =>
            DenseAdamWCpu.Step(parameters[i], gradients[i], _m[i], _v[i], s, (float)_beta1, (float)_beta2, (float)_eps));
    }

    /// <summary>clip_grad_norm_: ‖g‖ = √(Σ over tensors, in order, of Σ g²) in double; above the bound, g ← g·(bound / (‖g‖ + 1e-6)).</summary>
    private void Clip(float[][] gradients)
    {
        double sum = 0;
        foreach (var g in gradients)
            foreach (float x in g) sum += (double)x * x;
        double norm = Math.Sqrt(sum);
        LastGradientNorm = norm;
        double coefficient = _clipNorm / (norm + 1e-6);
        if (!(coefficient < 1)) return;   // within the bound (or a non-finite norm, which the step's own checks report)
        float c = (float)coefficient;
        foreach (var g in gradients)
            for (int i = 0; i < g.Length; i++) g[i] *= c;
    }
}

/// <summary>
/// Dense AdamW with Adafactor's update clipping (8 B/param): "AdamWUpdateClip", the AdamW row that gets the trick the clipping
/// Collins settings use (<c>UpdateClipping = 1</c>), so that their comparison with it is one of state estimators only. Per tensor,
/// every step t: m ← β1·m + (1 − β1)·g, v ← β2·v + (1 − β2)·g², u = m̂ / (√v̂ + ε) with m̂ = m / (1 − β1^t) and
/// v̂ = v / (1 − β2^t), then u ← u / max(1, RMS(u) / d) with RMS(u) = √(Σu² / n) over the tensor's n entries, and
/// p ← p·(1 − lr·wd) − lr·u (decoupled weight decay as <see cref="DenseAdamW"/> applies it). Every tensor is clipped, vectors
/// too, as with <c>DenseThreshold = 0</c>. Moments in float, arithmetic in double; a scalar loop per tensor (tensors in
/// parallel), so results do not depend on the thread count.
/// </summary>
public sealed class AdamWUpdateClip : ITrainerOptimizer
{
    private readonly TensorSpec[] _tensors;
    private readonly float[][] _m, _v;
    private readonly double[] _lastRms;
    private readonly double _beta1, _beta2, _eps, _wd, _threshold;
    private int _t;

    /// <param name="clipThreshold">d: an update whose RMS exceeds d is scaled down to RMS d (Adafactor's 1).</param>
    public AdamWUpdateClip(IReadOnlyList<TensorSpec> tensors, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0,
                           double clipThreshold = 1.0, string name = "AdamWUpdateClip")
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "β1 must be in [0, 1).");
        if (!(beta2 > 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "β2 must be in (0, 1).");
        if (!(epsilon > 0) || double.IsInfinity(epsilon)) throw new ArgumentOutOfRangeException(nameof(epsilon), epsilon, "ε must be finite and > 0.");
        if (!(weightDecay >= 0) || double.IsInfinity(weightDecay)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "The weight decay must be finite and >= 0.");
        if (!(clipThreshold > 0) || double.IsInfinity(clipThreshold))
            throw new ArgumentOutOfRangeException(nameof(clipThreshold), clipThreshold, "The update-clipping threshold d must be finite and > 0.");
        Name = name;
        _tensors = tensors.ToArray();
        _beta1 = beta1; _beta2 = beta2; _eps = epsilon; _wd = weightDecay; _threshold = clipThreshold;
        _m = _tensors.Select(t => new float[beta1 == 0 ? 0 : ModelConfig.Length(t)]).ToArray();
        _v = _tensors.Select(t => new float[ModelConfig.Length(t)]).ToArray();
        _lastRms = Enumerable.Repeat(double.NaN, _tensors.Length).ToArray();
    }

    public string Name { get; }
    public string Implementation => $"dense AdamW with update clipping d = {_threshold:G3} per tensor (TinyLm Optimizers.cs)";
    public long StateBytes => _m.Sum(m => 4L * m.Length) + _v.Sum(v => 4L * v.Length);

    /// <summary>RMS(u) of each tensor's last step before clipping (NaN before the first step); above d the step was clipped.</summary>
    public IReadOnlyList<double> LastUpdateRms => _lastRms;

    public void Step(float learningRate, float[][] parameters, float[][] gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        if (parameters.Length != _tensors.Length || gradients.Length != _tensors.Length)
            throw new ArgumentException($"{Name}: expected {_tensors.Length} parameter and gradient arrays, got {parameters.Length} and {gradients.Length}.");
        for (int i = 0; i < _tensors.Length; i++)
            if (parameters[i]?.Length != _v[i].Length || gradients[i]?.Length != _v[i].Length)
                throw new ArgumentException($"{Name}: tensor {_tensors[i].Name} has {_v[i].Length} entries, got {parameters[i]?.Length} (parameter) and {gradients[i]?.Length} (gradient).");
        int t = ++_t;
        double bc1 = _beta1 == 0 ? 1 : 1 - Math.Pow(_beta1, t), bc2 = 1 - Math.Pow(_beta2, t);
        double decay = 1 - learningRate * _wd;
        Kernels.For(_tensors.Length, i => StepTensor(i, learningRate, decay, bc1, bc2, parameters[i], gradients[i]));
    }

    private void StepTensor(int tensor, double lr, double decay, double bc1, double bc2, float[] p, float[] g)
    {
        float[] m = _m[tensor], v = _v[tensor];
        bool momentum = m.Length > 0;
        // Pass 1: the moments, and Σu² over the tensor.
        double sumU2 = 0;
        for (int j = 0; j < p.Length; j++)
        {
            double gj = g[j];
            v[j] = (float)(_beta2 * v[j] + (1 - _beta2) * gj * gj);
            if (momentum) m[j] = (float)(_beta1 * m[j] + (1 - _beta1) * gj);
            double u = Update(momentum ? m[j] : gj, v[j], bc1, bc2);
            sumU2 += u * u;
        }
        double rms = Math.Sqrt(sumU2 / p.Length);
        _lastRms[tensor] = rms;
        double step = lr / Math.Max(1, rms / _threshold);
        // Pass 2: p ← p·(1 − lr·wd) − lr·u / max(1, RMS(u)/d), u formed again from the stored moments (the same values).
        for (int j = 0; j < p.Length; j++)
            p[j] = (float)(p[j] * decay - step * Update(momentum ? m[j] : g[j], v[j], bc1, bc2));
    }

    /// <summary>u = m̂ / (√v̂ + ε).</summary>
    private double Update(double m, double v, double bc1, double bc2) => m / bc1 / (Math.Sqrt(v / bc2) + _eps);
}

/// <summary>Adapts the run-time <see cref="CountSketchAdam"/> (array step) to <see cref="ITrainerOptimizer"/>: any tensor shapes.</summary>
public sealed class RuntimeCountSketchAdam(string name, OptimizerSettings settings, IReadOnlyList<TensorSpec> tensors) : ITrainerOptimizer
{
    public string Name { get; } = name;
    public string Implementation => "runtime Collins.CountSketchAdam";
    public CountSketchAdam Optimizer { get; } = new(settings, tensors);
    public long StateBytes => Optimizer.StateBytes;
    public long SkippedSteps => Optimizer.SkippedSteps;
    public void Step(float learningRate, float[][] parameters, float[][] gradients) => Optimizer.Step(learningRate, parameters, gradients);
}

/// <summary>A generated optimizer seen without its type arguments: what it steps and with what.</summary>
public interface IGeneratedOptimizer : ITrainerOptimizer
{
    /// <summary>The generated optimizer, <c>TinyLmModel.{Name}</c>.</summary>
    SketchedOptimizerBase Optimizer { get; }
    /// <summary>The model whose members are the parameters it steps.</summary>
    TinyLmModel Model { get; }
    /// <summary>The generated <c>TinyLmModel.{Name}.Gradients</c> holder whose arrays are the gradients.</summary>
    object Gradients { get; }
}

/// <summary>
/// A generated optimizer <c>TinyLmModel.{Variant}</c> (<typeparamref name="TOptimizer"/>) stepped through its model-typed
/// <c>Step(lr, model, gradients)</c>. It owns the <see cref="TinyLmModel"/> whose members are the parameters and the
/// generated <typeparamref name="TGradients"/> holder whose arrays are the gradients, and hands both out as the trainer's
/// buffers (<see cref="BuffersFor"/>): the backward pass writes straight into the holder, the step updates the model's
/// members in place, nothing is copied.
/// </summary>
public sealed class GeneratedOptimizer<TOptimizer, TGradients> : IGeneratedOptimizer
    where TOptimizer : SketchedOptimizerBase, new()
    where TGradients : class, new()
{
    /// <summary>The variant's model-typed step, <c>(o, lr, m, g) => o.Step(lr, m, g)</c> (a generic type cannot name it).</summary>
    public delegate StepOutcome ModelStep(TOptimizer optimizer, float learningRate, TinyLmModel model, TGradients gradients);

    private readonly ModelStep _step;
    private readonly TensorBuffers _buffers;

    /// <param name="name">The variant's name (the generated type's).</param>
    /// <param name="gradientTensors">The holder's arrays in declaration order (the generated <c>Gradients.Tensors</c>).</param>
    /// <param name="step">The variant's model-typed step.</param>
    public GeneratedOptimizer(string name, Func<TGradients, float[][]> gradientTensors, ModelStep step)
    {
        Name = name;
        _step = step;
        Optimizer = new TOptimizer();
        Model = new TinyLmModel();
        Gradients = new TGradients();
        _buffers = new TensorBuffers(Model.Tensors(), gradientTensors(Gradients));
        TensorBuffers.CheckShapes(_buffers, TinyLmModel.DeclaredSpecs);
    }

    public string Name { get; }
    public string Implementation => "generated TinyLmModel." + Name;
    public long StateBytes => Optimizer.StateBytes;
    public long SkippedSteps => Optimizer.SkippedSteps;
    public TOptimizer Optimizer { get; }
    SketchedOptimizerBase IGeneratedOptimizer.Optimizer => Optimizer;
    object IGeneratedOptimizer.Gradients => Gradients;
    /// <summary>The model whose members are the parameters this optimizer steps.</summary>
    public TinyLmModel Model { get; }
    /// <summary>The generated gradient holder whose arrays the backward pass fills.</summary>
    public TGradients Gradients { get; }

    /// <summary>The model's members and the holder's arrays (the same each call); only for <see cref="TinyLmModel.Config"/>.</summary>
    public TensorBuffers BuffersFor(ModelConfig config) =>
        config == TinyLmModel.Config ? _buffers
        : throw new ArgumentException($"{Implementation} is generated for {TinyLmModel.Config}, not {config}.", nameof(config));

    /// <summary>One step over <see cref="Model"/> with <see cref="Gradients"/>, which must be the arrays passed here.</summary>
    public void Step(float learningRate, float[][] parameters, float[][] gradients)
    {
        if (!_buffers.AreThese(parameters, gradients))
            throw new ArgumentException($"{Implementation} steps its own model and gradient holder: pass the arrays of BuffersFor(config).");
        _step(Optimizer, learningRate, Model, Gradients);
    }
}

/// <summary>A Collins variant of the catalogue: its settings and its generated optimizer.</summary>
/// <param name="Name">The <c>[SketchedOptimizer(Name = …)]</c> on <see cref="TinyLmModel"/>, which is the generated type's name.</param>
/// <param name="Settings">The generated <c>TinyLmModel.{Name}.DefaultSettings</c> (the attribute's values).</param>
/// <param name="TensorSpecs">The generated <c>TinyLmModel.{Name}.TensorSpecs</c>.</param>
/// <param name="CreateGenerated">A new instance of the generated optimizer, for <see cref="TinyLmModel.Config"/>.</param>
public sealed record CollinsVariant(string Name, OptimizerSettings Settings, IReadOnlyList<TensorSpec> TensorSpecs, Func<ITrainerOptimizer> CreateGenerated);

/// <summary>
/// Every optimizer the trainer knows, by name: the AdamW baselines of <see cref="AdamWNames"/>, one Collins variant per <c>[SketchedOptimizer(Name = …)]</c> on
/// <see cref="TinyLmModel"/>, listed explicitly in <see cref="Variants"/> (a test checks that the list and the attributes
/// agree), and the memory-light anchors of <see cref="AnchorNames"/> (baselines, Anchors.cs). A variant runs its generated
/// type <c>TinyLmModel.{Name}</c> for the declared <see cref="TinyLmModel.Config"/>, and the run-time
/// <see cref="CountSketchAdam"/> with the same settings for any other shapes; the results say which.
/// </summary>
public static class OptimizerCatalog
{
    /// <summary>The variants, in the attributes' declaration order: one line each.</summary>
    public static IReadOnlyList<CollinsVariant> Variants { get; } = CheckSameSpecs(
    [
        Generated<M.C32, M.C32.Gradients>(nameof(M.C32), M.C32.DefaultSettings, M.C32.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.C32Mean, M.C32Mean.Gradients>(nameof(M.C32Mean), M.C32Mean.DefaultSettings, M.C32Mean.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.C32Universal, M.C32Universal.Gradients>(nameof(M.C32Universal), M.C32Universal.DefaultSettings, M.C32Universal.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.C32NoMomentum, M.C32NoMomentum.Gradients>(nameof(M.C32NoMomentum), M.C32NoMomentum.DefaultSettings, M.C32NoMomentum.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.C32MeanNoMomentum, M.C32MeanNoMomentum.Gradients>(nameof(M.C32MeanNoMomentum), M.C32MeanNoMomentum.DefaultSettings, M.C32MeanNoMomentum.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.C1, M.C1.Gradients>(nameof(M.C1), M.C1.DefaultSettings, M.C1.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.C4, M.C4.Gradients>(nameof(M.C4), M.C4.DefaultSettings, M.C4.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.C8, M.C8.Gradients>(nameof(M.C8), M.C8.DefaultSettings, M.C8.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.C64, M.C64.Gradients>(nameof(M.C64), M.C64.DefaultSettings, M.C64.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.Factored, M.Factored.Gradients>(nameof(M.Factored), M.Factored.DefaultSettings, M.Factored.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.FactoredClip, M.FactoredClip.Gradients>(nameof(M.FactoredClip), M.FactoredClip.DefaultSettings, M.FactoredClip.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.FactoredSchedule, M.FactoredSchedule.Gradients>(nameof(M.FactoredSchedule), M.FactoredSchedule.DefaultSettings, M.FactoredSchedule.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.FactoredClipAll, M.FactoredClipAll.Gradients>(nameof(M.FactoredClipAll), M.FactoredClipAll.DefaultSettings, M.FactoredClipAll.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
        Generated<M.FactoredQ4, M.FactoredQ4.Gradients>(nameof(M.FactoredQ4), M.FactoredQ4.DefaultSettings, M.FactoredQ4.TensorSpecs, g => g.Tensors, (o, lr, m, g) => o.Step(lr, m, g)),
    ]);

    private static CollinsVariant Generated<TOptimizer, TGradients>(
        string name, OptimizerSettings settings, IReadOnlyList<TensorSpec> specs,
        Func<TGradients, float[][]> gradientTensors, GeneratedOptimizer<TOptimizer, TGradients>.ModelStep step)
        where TOptimizer : SketchedOptimizerBase, new() where TGradients : class, new() =>
        new(name, settings, specs, () => new GeneratedOptimizer<TOptimizer, TGradients>(name, gradientTensors, step));

    /// <summary>Every variant declares the same tensors as <see cref="TinyLmModel.DeclaredSpecs"/> (checked once, here).</summary>
    private static CollinsVariant[] CheckSameSpecs(CollinsVariant[] variants)
    {
        foreach (var v in variants)
            if (ModelConfig.SpecsDiffer(TinyLmModel.DeclaredSpecs, v.TensorSpecs) is { } difference)
                throw new InvalidOperationException($"TinyLmModel.{v.Name}.TensorSpecs differ from TinyLmModel.DeclaredSpecs: {difference}.");
        return variants;
    }

    /// <summary>
    /// The memory-light anchors, baselines written from their papers (Anchors.cs): 8-bit Adam (bitsandbytes), 4-bit AdamW
    /// (Li et al.), Adafactor (Shazeer &amp; Stern) and Adam-mini (Zhang et al.); and two ablations of Adafactor's treatment of
    /// vectors (<see cref="AdafactorVectors"/>: as Adam, and without clipping).
    /// </summary>
    public static IReadOnlyList<string> AnchorNames { get; } = ["Adam8bit", "AdamW4bit", "Adafactor", "AdamMini", "AdafactorAdamVectors", "AdafactorNoClipVectors"];

    /// <summary>
    /// The variants the README recommends, smallest state first: "FactoredClipAll" (β1 = 0, factored second moment, update
    /// clipping 1, every tensor factored; about 0.14 B/param) and "FactoredQ4" (β1 0.9 in 4-bit blocks with stochastic rounding,
    /// factored second moment; about 0.7 B/param). The default run trains them; the sweep's frontier plot labels them first.
    /// </summary>
    public static IReadOnlyList<string> RecommendedVariants { get; } = ["FactoredClipAll", "FactoredQ4"];

    /// <summary>
    /// The AdamW baselines (8 B/param): plain and with global gradient-norm clipping at 1.0 (<see cref="DenseAdamW"/>), the two
    /// whose better is issue #14's bar; and with Adafactor's update clipping at d = 1 (<see cref="AdamWUpdateClip"/>), not part of
    /// the bar but the fair comparison for the Collins settings that clip updates (<c>UpdateClipping = 1</c>).
    /// </summary>
    public static IReadOnlyList<string> AdamWNames { get; } = ["AdamW", "AdamWClip", "AdamWUpdateClip"];

    /// <summary>Every name <see cref="Create"/> knows: the AdamW baselines, the Collins variants, the anchors.</summary>
    public static IEnumerable<string> Names => AdamWNames.Concat(Variants.Select(v => v.Name)).Concat(AnchorNames);

    /// <summary>The variant named <paramref name="name"/>.</summary>
    public static CollinsVariant Variant(string name) => Variants.FirstOrDefault(v => v.Name == name)
        ?? throw new ArgumentException($"Unknown optimizer '{name}'. Known: {string.Join(", ", Names)}.");

    /// <summary>
    /// The learning rate each named optimizer did best with in the 500-step sweep (grid 3e-4, 1e-3, 3e-3, 1e-2, seed 1;
    /// docs/tinylm/sweep/results.md), which the default run uses unless <c>--lr</c> is given, so that no optimizer of
    /// the default run is handicapped by a rate chosen for another.
    /// </summary>
    /// <remarks>
    /// The anchors were not in that sweep: their rates are their best of {1e-3, 3e-3, 1e-2, 3e-2} in a 1500-step sweep
    /// (seed 1; AdamW's best there was 1e-2 too) made when they were added, until the frontier sweep replaces them.
    /// </remarks>
    public static float SweepLearningRate(string name) => name switch
    {
        "C32Mean" or "C32MeanNoMomentum" => 3e-3f,   // R32 Rotation Mean b1=0.9 / b1=0.0
        "Factored" => 3e-3f,                          // frontier sweep (1500 steps, seeds 1 and 2): 3e-3 both times, of 1e-3 … 3e-2
        "AdamMini" => 3e-2f,                          // anchor: 1.9276 at 3e-2 against 1.9412 at 1e-2
        _ => 1e-2f,                                   // AdamW, C1, C4, C8, C32, C32Universal, C32NoMomentum, C64; Adam8bit, AdamW4bit, Adafactor; FactoredClip, FactoredSchedule, FactoredClipAll, FactoredQ4, AdamWUpdateClip (frontier sweep)
    };

    /// <summary>Creates the optimizer named <paramref name="name"/> for a model of <paramref name="config"/>.</summary>
    public static ITrainerOptimizer Create(string name, ModelConfig config)
    {
        if (CreateBaseline(name, config) is { } baseline) return baseline;
        var variant = Variant(name);
        return FallsBackToRuntime(name, config) ? CreateRuntime(name, variant.Settings, config.Specs()) : variant.CreateGenerated();
    }

    /// <summary>An AdamW baseline (<see cref="AdamWNames"/>) or an anchor (<see cref="AnchorNames"/>) for a model of <paramref name="config"/>; null for any other name.</summary>
    public static ITrainerOptimizer? CreateBaseline(string name, ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var specs = config.Specs();
        return name switch
        {
            "AdamW" => new DenseAdamW(specs),
            "AdamWClip" => new DenseAdamW(specs, name: "AdamWClip", clipNorm: 1.0),
            "AdamWUpdateClip" => new AdamWUpdateClip(specs),
            "Adam8bit" => new Adam8bit(specs),
            "AdamW4bit" => new AdamW4bit(specs),
            "Adafactor" => new Adafactor(specs),
            "AdafactorAdamVectors" => new Adafactor(specs, name: "AdafactorAdamVectors", vectors: AdafactorVectors.Adam),
            "AdafactorNoClipVectors" => new Adafactor(specs, name: "AdafactorNoClipVectors", vectors: AdafactorVectors.NoClipping),
            "AdamMini" => new AdamMini(specs, config.Heads),
            _ => null,
        };
    }

    /// <summary>
    /// Whether <see cref="Create"/> gives the Collins variant <paramref name="name"/> the run-time <see cref="CountSketchAdam"/>
    /// instead of its generated type: when <paramref name="config"/> is not the declared <see cref="TinyLmModel.Config"/> (the
    /// generated optimizers are specialised to its shapes). Never for AdamW or an anchor, which are not generated.
    /// </summary>
    public static bool FallsBackToRuntime(string name, ModelConfig config) => !AdamWNames.Contains(name) && !AnchorNames.Contains(name) && config != TinyLmModel.Config;

    /// <summary>A Collins optimizer from run-time settings, for any shapes (the sweep's path).</summary>
    public static ITrainerOptimizer CreateRuntime(string name, OptimizerSettings settings, IReadOnlyList<TensorSpec> specs) =>
        new RuntimeCountSketchAdam(name, settings, specs);
}
