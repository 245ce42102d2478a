using System.Buffers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Collins.TorchSharp;

// TorchSharp's optimizer conventions, which this adapter follows on purpose (step(), zero_grad(set_to_none), parameters(),
// named_parameters(), save_state_dict/load_state_dict, weight_decay): its users call these names. CA1707/IDE1006 would ask
// for .NET casing instead.
#pragma warning disable CA1707, IDE1006
/// <summary>
/// Count-Sketch Adam (Collins) or exact dense AdamW over a TorchSharp module's parameters, for shapes known at run time:
/// the drop-in for <c>torch.optim.AdamW(model.parameters())</c>. It is <see cref="CountSketchAdam"/> (the same engine as
/// every optimizer of this library), stepping each parameter's storage in place.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="step"/> views every parameter's and gradient's storage as a <see cref="Span{T}"/> through its native data
/// pointer (no copy, any size the engine indexes, including tensors above 2^31 bytes) and runs one engine step on them.
/// Before anything is written it refuses, with an exception naming the tensor: a dtype other than float32, a
/// non-contiguous tensor or gradient, a missing gradient, a gradient of another shape, a parameter whose shape changed
/// since construction, and a tensor that is not on the CPU (CUDA tensors: see the README; move the model to the CPU
/// or use <c>torch.optim.AdamW</c> there).
/// </para>
/// <para>
/// The parameters are written through their pointers, outside autograd (as <c>torch.no_grad()</c> would): their
/// version counters do not change. State is the engine's; <see cref="Save"/>/<see cref="Load"/> (and
/// <see cref="save_state_dict(string)"/>/<see cref="load_state_dict(string)"/>) use this library's checkpoint format,
/// which identifies the tensors by name, shape and settings.
/// </para>
/// </remarks>
public sealed class CollinsOptimizer : IDisposable
{
    // A zero-dimensional parameter (a scalar) is one entry to the engine.
    private static readonly int[] ScalarShape = { 1 };

    private readonly (string Name, Parameter Parameter)[] _parameters;
    private readonly long[][] _shapes;
    private readonly NativeFloats[] _parameterMemory;
    private readonly NativeFloats[] _gradientMemory;
    private readonly Memory<float>[] _parameterList;
    private readonly ReadOnlyMemory<float>[] _gradientList;
    private bool _disposed;

    /// <summary>
    /// Builds the optimizer over <paramref name="namedParameters"/> (as <c>module.named_parameters()</c> gives them; the
    /// names determine the hash constants and identify the tensors in checkpoints).
    /// </summary>
    /// <param name="namedParameters">The parameters and their names, in a fixed order.</param>
    /// <param name="learningRate">The learning rate (<see cref="LearningRate"/>; change it between steps for a schedule).</param>
    /// <param name="settings">Ratio, betas, ε, weight decay, layout, seed. Ratio 1 is exact (dense) AdamW.</param>
    /// <exception cref="ArgumentException">A parameter is empty, appears twice, or two share a name; or the settings are invalid.</exception>
    public CollinsOptimizer(IEnumerable<(string name, Parameter parameter)> namedParameters, double learningRate, OptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(namedParameters);
        ArgumentNullException.ThrowIfNull(settings);
        _parameters = namedParameters.Select(p => (p.name, p.parameter)).ToArray();
        if (_parameters.Length == 0) throw new ArgumentException("The optimizer needs at least one parameter.", nameof(namedParameters));
        var names = new HashSet<string>(StringComparer.Ordinal);
        var handles = new HashSet<IntPtr>();
        foreach (var (name, p) in _parameters)
        {
            if (p is null) throw new ArgumentException($"Tensor '{name}' is null.", nameof(namedParameters));
            if (!names.Add(name)) throw new ArgumentException($"Two parameters are named '{name}'.", nameof(namedParameters));
            if (!handles.Add(p.Handle)) throw new ArgumentException($"Tensor '{name}' is listed twice.", nameof(namedParameters));
            if (p.numel() == 0) throw new ArgumentException($"Tensor '{name}' has no elements.", nameof(namedParameters));
            if (p.numel() > int.MaxValue) throw new ArgumentException($"Tensor '{name}' has {p.numel()} elements, more than the engine indexes.", nameof(namedParameters));
        }
        _shapes = _parameters.Select(p => p.Parameter.shape).ToArray();
        var specs = _parameters.Select((p, i) => new TensorSpec(p.Name, _shapes[i].Length == 0 ? ScalarShape : _shapes[i].Select(d => checked((int)d)).ToArray())).ToArray();
        Engine = new CountSketchAdam(settings, specs);
        LearningRate = learningRate;
        _parameterMemory = new NativeFloats[_parameters.Length];
        _gradientMemory = new NativeFloats[_parameters.Length];
        _parameterList = new Memory<float>[_parameters.Length];
        _gradientList = new ReadOnlyMemory<float>[_parameters.Length];
        for (int i = 0; i < _parameters.Length; i++) { _parameterMemory[i] = new NativeFloats(); _gradientMemory[i] = new NativeFloats(); }
    }

    /// <summary>Over <c>module.named_parameters()</c>.</summary>
    public CollinsOptimizer(nn.Module module, double learningRate, OptimizerSettings settings)
        : this((module ?? throw new ArgumentNullException(nameof(module))).named_parameters(), learningRate, settings) { }

    /// <summary>
    /// Over unnamed parameters (as <c>module.parameters()</c> gives them), named <c>p0</c>, <c>p1</c>, … in order; prefer
    /// the named overloads, whose checkpoints survive a reordering of the module's members.
    /// </summary>
    public CollinsOptimizer(IEnumerable<Parameter> parameters, double learningRate, OptimizerSettings settings)
        : this((parameters ?? throw new ArgumentNullException(nameof(parameters))).Select((p, i) => ("p" + i, p)), learningRate, settings) { }

    /// <summary>
    /// Exact AdamW (this library's dense path: Ratio 1), with <c>torch.optim.AdamW</c>'s defaults (β 0.9/0.999, ε 1e-8,
    /// weight decay 0.01).
    /// </summary>
    public static CollinsOptimizer AdamW(IEnumerable<(string name, Parameter parameter)> namedParameters, double lr = 1e-3,
        double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weight_decay = 0.01)
        => new(namedParameters, lr, new OptimizerSettings { Ratio = 1, Beta1 = beta1, Beta2 = beta2, Epsilon = eps, WeightDecay = weight_decay });

    /// <summary>Count-Sketch Adam with <paramref name="settings"/> (default: Ratio 32, β1 0.9, Rotation).</summary>
    public static CollinsOptimizer CountSketch(IEnumerable<(string name, Parameter parameter)> namedParameters, double lr, OptimizerSettings? settings = null)
        => new(namedParameters, lr, settings ?? new OptimizerSettings());

    /// <summary>The engine (state, counters, <see cref="SketchedOptimizerBase.NonFinitePolicy"/>, …).</summary>
    public CountSketchAdam Engine { get; }

    /// <summary>The learning rate of the next <see cref="step"/>.</summary>
    public double LearningRate { get; set; }

    /// <summary>The settings the engine was built with.</summary>
    public OptimizerSettings Settings => Engine.Settings;

    /// <summary>Optimizer state in bytes (the sketches, or 8 B per parameter for dense tensors).</summary>
    public long StateBytes => Engine.StateBytes;

    /// <summary>Steps taken (those skipped for a non-finite gradient not counted).</summary>
    public int StepCount => Engine.StepCount;

    /// <summary>The parameters, in the engine's order.</summary>
    public IEnumerable<Parameter> parameters() => _parameters.Select(p => p.Parameter);

    /// <summary>The parameters with their names, in the engine's order.</summary>
    public IEnumerable<(string name, Parameter parameter)> named_parameters() => _parameters.Select(p => (p.Name, p.Parameter));

    /// <summary>
    /// One optimizer step on every parameter from its <c>.grad</c>, in place. Returns
    /// <see cref="StepOutcome.SkippedNonFinite"/> (nothing changed) when a gradient holds NaN or ±Inf and the engine's
    /// policy is <see cref="NonFinitePolicy.Skip"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A tensor or its gradient is not float32, not contiguous, of another shape, or missing; nothing was changed.</exception>
    /// <exception cref="NotSupportedException">A tensor or gradient is not on the CPU (e.g. CUDA); nothing was changed.</exception>
    public StepOutcome step()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var grads = new Tensor?[_parameters.Length];
        try
        {
            for (int i = 0; i < _parameters.Length; i++)
            {
                var (name, p) = _parameters[i];
                Check(name, "tensor", p, _shapes[i]);
                var g = p.grad;
                if (g is null)
                    throw new ArgumentException($"Tensor '{name}' has no gradient (.grad is null): call loss.backward() before step(), and give the optimizer only parameters that take part in the loss.", name);
                grads[i] = g;
                Check(name, "gradient", g, _shapes[i]);
            }
            // Validated: view the storages (nothing is written before the engine's own validation either).
            for (int i = 0; i < _parameters.Length; i++)
            {
                _parameterMemory[i].Reset(DataPointer(_parameters[i].Parameter), checked((int)_parameters[i].Parameter.numel()));
                _gradientMemory[i].Reset(DataPointer(grads[i]!), checked((int)grads[i]!.numel()));
                _parameterList[i] = _parameterMemory[i].Memory;
                _gradientList[i] = _gradientMemory[i].Memory;
            }
            return Engine.Step((float)LearningRate, _parameterList, _gradientList);
        }
        finally
        {
            for (int i = 0; i < _parameters.Length; i++)
            {
                _parameterMemory[i].Reset(IntPtr.Zero, 0);
                _gradientMemory[i].Reset(IntPtr.Zero, 0);
                grads[i]?.Dispose();
            }
        }
    }

    /// <summary>Clears every parameter's gradient: sets it to none (the default, as TorchSharp's) or to zeros.</summary>
    public void zero_grad(bool set_to_none = true)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        foreach (var (_, p) in _parameters)
        {
            using var g = p.grad;
            if (g is null) continue;
            if (set_to_none) p.grad = null;
            else { using var _ = g.zero_(); }
        }
    }

    /// <summary>Writes the optimizer state in this library's checkpoint format (<see cref="SketchedOptimizerBase.Save"/>).</summary>
    public void Save(Stream stream) => Engine.Save(stream);

    /// <summary>Reads a checkpoint written by <see cref="Save"/>; validated whole before anything changes (<see cref="SketchedOptimizerBase.Load"/>).</summary>
    public void Load(Stream stream) => Engine.Load(stream);

    /// <summary>TorchSharp's name for saving to a file (atomic, <see cref="SketchedOptimizerBase.SaveToFile"/>).</summary>
    public void save_state_dict(string location) => Engine.SaveToFile(location);

    /// <summary>TorchSharp's name for loading from a file (<see cref="SketchedOptimizerBase.LoadFromFile"/>).</summary>
    public void load_state_dict(string location) => Engine.LoadFromFile(location);

    /// <summary>Writes the state to <paramref name="writer"/>'s stream (TorchSharp's <c>save_state_dict(BinaryWriter)</c>).</summary>
    public void save_state_dict(BinaryWriter writer) { ArgumentNullException.ThrowIfNull(writer); writer.Flush(); Engine.Save(writer.BaseStream); }

    /// <summary>Reads the state from the rest of <paramref name="reader"/>'s stream.</summary>
    public void load_state_dict(BinaryReader reader) { ArgumentNullException.ThrowIfNull(reader); Engine.Load(reader.BaseStream); }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Engine.Dispose();
    }

    internal static void Check(string name, string what, Tensor t, ReadOnlySpan<long> shape)
    {
        if (t.device_type != DeviceType.CPU)
            throw new NotSupportedException(
                $"Tensor '{name}': the {what} is on {t.device}; this optimizer steps CPU tensors only. Train on the CPU (model.cpu()), or use torch.optim.AdamW for CUDA models (README, \"TorchSharp\").");
        if (t.dtype != ScalarType.Float32)
            throw new ArgumentException($"Tensor '{name}': the {what} is {t.dtype}; this optimizer steps float32 tensors only (convert the model with .to(torch.float32)).", name);
        if (!t.is_contiguous())
            throw new ArgumentException($"Tensor '{name}': the {what} is not contiguous; the optimizer steps a tensor's storage in place (make the parameter contiguous before building the optimizer).", name);
        var actual = t.shape;
        if (!actual.AsSpan().SequenceEqual(shape))
            throw new ArgumentException($"Tensor '{name}': the {what} has shape [{string.Join(", ", actual)}], but the optimizer was built for [{string.Join(", ", shape.ToArray())}].", name);
    }

    /// <summary>
    /// The address of a contiguous CPU tensor's first element. Taken from a one-element view of the same storage, whose
    /// <c>bytes</c> span starts there: this works for tensors of any size (<c>bytes</c> of the whole tensor would not above
    /// 2^31 bytes) and copies nothing.
    /// </summary>
    /// <exception cref="ArgumentException">The tensor is not a contiguous CPU tensor with at least one element.</exception>
    public static unsafe IntPtr DataPointer(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (t.device_type != DeviceType.CPU || !t.is_contiguous() || t.numel() == 0)
            throw new ArgumentException("DataPointer needs a contiguous CPU tensor with at least one element.", nameof(t));
        using var flat = t.view(-1);
        using var first = flat.narrow(0, 0, 1);
        fixed (byte* p = first.bytes) return (IntPtr)p;
    }

    /// <summary>A reusable <see cref="MemoryManager{T}"/> over native floats (no pinning needed: native memory does not move).</summary>
    private sealed unsafe class NativeFloats : MemoryManager<float>
    {
        private IntPtr _pointer;
        private int _length;

        public void Reset(IntPtr pointer, int length) { _pointer = pointer; _length = length; }

        // The inherited Memory is CreateMemory(GetSpan().Length): this manager's current pointer and length.


        public override Span<float> GetSpan() => new((void*)_pointer, _length);

        public override MemoryHandle Pin(int elementIndex = 0) => new((float*)_pointer + elementIndex);

        public override void Unpin() { }

        protected override void Dispose(bool disposing) { }
    }
}
#pragma warning restore CA1707, IDE1006
