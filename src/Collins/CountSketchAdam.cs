using System.Numerics;
using Collins.Hashing;
using Collins.Kernels;

namespace Collins;

/// <summary>
/// The run-time Count-Sketch Adam optimizer, for shapes known only at run time. It derives exactly the same hash constants
/// as the generated optimizers (through <see cref="TensorPlan"/>) and its CPU step is the same engine
/// (<see cref="SketchedOptimizerBase.StepCpu{TBuffers}"/>), so a generated optimizer and this one with the same settings
/// are bit-identical. Its state is in CPU arrays or, when constructed with an ILGPU accelerator, on that accelerator, where
/// it launches generic kernels with run-time constants (the same operation order as the generated unrolled ones). Every
/// argument is validated before anything is written, a non-finite gradient changes nothing, and results are bit-identical
/// for any <see cref="SketchedOptimizerBase.MaxThreads"/>.
/// </summary>
public sealed partial class CountSketchAdam : SketchedOptimizerBase
{
    /// <summary>Builds an optimizer for <paramref name="tensors"/> with CPU state.</summary>
    /// <param name="settings">Ratio, betas, layout, seed…</param>
    /// <param name="tensors">The tensors, in the order <c>Step</c> receives their buffers.</param>
    /// <param name="accelerator">
    /// Null for CPU state (step it with arrays or <see cref="Memory{T}"/>); an ILGPU accelerator to keep
    /// the state there (step it with <see cref="ILGPU.ArrayView{T}"/> buffers of that accelerator).
    /// </param>
    public CountSketchAdam(OptimizerSettings settings, IReadOnlyList<TensorSpec> tensors, ILGPU.Runtime.Accelerator? accelerator = null)
        : base(settings, BuildPlans(settings, tensors), accelerator)
    {
        if (accelerator is not null) InitializeDevice(accelerator);
    }

    /// <summary>
    /// A CPU optimizer whose kernels run with <paramref name="tuning"/> instead of this process's <see cref="CpuTuning.Current"/>
    /// (the bench times tunings against each other in one process; every tuning steps to the same values).
    /// </summary>
    internal CountSketchAdam(OptimizerSettings settings, IReadOnlyList<TensorSpec> tensors, CpuTuning tuning)
        : base(settings, BuildPlans(settings, tensors), accelerator: null, tuning)
    {
    }

    /// <inheritdoc/>
    protected override void OnDispose() => DisposeDevice();

    private static TensorPlan[] BuildPlans(OptimizerSettings settings, IReadOnlyList<TensorSpec> tensors)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(tensors);
        return tensors.Select(t => new TensorPlan(t, settings)).ToArray();
    }

    /// <summary>Convenience overload: one parameter and one gradient array per tensor, in declaration order. Allocates nothing.</summary>
    public StepOutcome Step(float learningRate, float[][] parameters, float[][] gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        for (int i = 0; i < parameters.Length; i++) if (parameters[i] is null) throw NullBuffer(i, "parameter");
        for (int i = 0; i < gradients.Length; i++) if (gradients[i] is null) throw NullBuffer(i, "gradient");
        var buffers = new TensorArrays(parameters, gradients);
        return StepCpu(learningRate, ref buffers);
    }

    // The memory lists seen through a struct, so the generic step neither boxes them nor copies them into arrays (the array
    // overload uses the runtime's TensorArrays, as the generated model Step does).
    private readonly struct MemoryBuffers(IReadOnlyList<Memory<float>> p, IReadOnlyList<ReadOnlyMemory<float>> g) : IStepBuffers
    {
        public int ParameterCount => p.Count;
        public int GradientCount => g.Count;
        public Span<float> Parameters(int i) => p[i].Span;
        public ReadOnlySpan<float> Gradient(int i) => g[i].Span;
    }

    private ArgumentException NullBuffer(int index, string what)
        => new($"Tensor '{(index < Tensors.Count ? Tensors[index].Name : "#" + index)}': the {what} array is null.", what == "parameter" ? "parameters" : "gradients");

    /// <summary>
    /// Takes one step: <paramref name="parameters"/>[i] and <paramref name="gradients"/>[i] belong to
    /// tensor i (declaration order). Returns <see cref="StepOutcome.SkippedNonFinite"/> (and changes
    /// nothing) when a gradient holds NaN or ±Inf under <see cref="NonFinitePolicy.Skip"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A buffer is missing, has the wrong length, or overlaps another; nothing was changed.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The learning rate is negative or not finite; nothing was changed.</exception>
    /// <exception cref="InvalidOperationException">Another step is running on this optimizer; nothing was changed by this call.</exception>
    /// <exception cref="ObjectDisposedException">The optimizer was disposed.</exception>
    /// <exception cref="NonFiniteGradientException">A gradient is not finite and the policy is <see cref="NonFinitePolicy.Throw"/>; nothing was changed.</exception>
    public StepOutcome Step(float learningRate, IReadOnlyList<Memory<float>> parameters, IReadOnlyList<ReadOnlyMemory<float>> gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        var buffers = new MemoryBuffers(parameters, gradients);
        return StepCpu(learningRate, ref buffers);
    }
}
