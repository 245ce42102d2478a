using Collins.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Collins;

/// <summary>What a guarded <c>Step</c> did.</summary>
public enum StepOutcome
{
    /// <summary>The step was applied: parameters, moments and the step counter advanced.</summary>
    Applied = 0,
    /// <summary>A gradient held NaN or ±Inf: nothing was changed (parameters, moments and step counter are bit-identical).</summary>
    SkippedNonFinite = 1,
}

/// <summary>What <c>Step</c> does when a gradient holds NaN or ±Inf.</summary>
public enum NonFinitePolicy
{
    /// <summary>Skip the whole step, change nothing, count it in <see cref="SketchedOptimizerBase.SkippedSteps"/>. The default.</summary>
    Skip = 0,
    /// <summary>Throw <see cref="NonFiniteGradientException"/> and change nothing.</summary>
    Throw = 1,
}

/// <summary>A gradient held NaN or ±Inf and the policy is <see cref="NonFinitePolicy.Throw"/>. Nothing was changed.</summary>
public sealed class NonFiniteGradientException : Exception
{
    public NonFiniteGradientException(string message) : base(message) { }
}

/// <summary>
/// Per-step scalars shared by every kernel (CPU and ILGPU). Compile-time settings (β1, β2, ε) are
/// literals in generated kernels; these are the values that change from step to step.
/// </summary>
public readonly struct StepScalars
{
    public StepScalars(float learningRate, float decay, float invBiasCorrection1, float invSqrtBiasCorrection2, int step)
    {
        LearningRate = learningRate;
        Decay = decay;
        InvBiasCorrection1 = invBiasCorrection1;
        InvSqrtBiasCorrection2 = invSqrtBiasCorrection2;
        Step = step;
    }

    /// <summary>lr.</summary>
    public float LearningRate { get; }
    /// <summary>1 − lr·weightDecay (decoupled weight decay factor).</summary>
    public float Decay { get; }
    /// <summary>1 / (1 − β1^t) (1 when β1 = 0).</summary>
    public float InvBiasCorrection1 { get; }
    /// <summary>1 / √(1 − β2^t).</summary>
    public float InvSqrtBiasCorrection2 { get; }
    /// <summary>t, the 1-based index of the step being taken.</summary>
    public int Step { get; }

    /// <summary>Scalars for step t (1-based).</summary>
    public static StepScalars For(int step, float learningRate, double beta1, double beta2, double weightDecay)
    {
        double bc1 = beta1 == 0 ? 1.0 : 1.0 - Math.Pow(beta1, step);
        double bc2 = 1.0 - Math.Pow(beta2, step);
        return new StepScalars(
            learningRate,
            (float)(1.0 - learningRate * weightDecay),
            (float)(1.0 / bc1),
            (float)(1.0 / Math.Sqrt(bc2)),
            step);
    }
}

/// <summary>
/// State, validation and the step protocol shared by every Count-Sketch Adam optimizer: the
/// source-generated ones and the run-time <see cref="CountSketchAdam"/>. Derived types supply the
/// kernels; this class owns the moments, the step counter, the non-finite policy, checkpoints and
/// the thread-safety guard.
/// </summary>
/// <remarks>
/// Step protocol for derived types (generated code follows it exactly):
/// <code>
/// var s = BeginStep(learningRate, onDevice: false);     // validates lr, disposal, mode; takes the guard
/// try {
///     ValidateTensor(0, p0.Length, g0.Length); ValidateNoOverlap(0, p0, g0); ...   // before any write
///     bool finite = Accumulate(...) &amp; ...;           // phase 1: bucket sums into the workspace, no state written
///     if (finite) Apply(...);                           // phase 2: moments and parameters
///     return EndStep(finite);                           // advances t, or counts/throws a skip; releases the guard
/// } catch { AbortStep(); throw; }
/// </code>
/// </remarks>
public abstract partial class SketchedOptimizerBase : IDisposable
{
    private int _busy;
    private bool _disposed;

    protected SketchedOptimizerBase(OptimizerSettings settings, IReadOnlyList<TensorPlan> tensors, ILGPU.Runtime.Accelerator? accelerator)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(tensors);
        settings.Validate();
        if (tensors.Count == 0) throw new ArgumentException("An optimizer needs at least one tensor.", nameof(tensors));
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
            if (!names.Add(t.Name)) throw new ArgumentException($"Duplicate tensor name '{t.Name}'.", nameof(tensors));
        Settings = settings;
        Tensors = tensors;
        Accelerator = accelerator;
        int n = tensors.Count;
        FirstMoments = new float[n][];
        SecondMoments = new float[n][];
        SumM = new AlignedFloats[n];
        SumV = new AlignedFloats[n];
        Array.Fill(SumM, AlignedFloats.Empty);
        Array.Fill(SumV, AlignedFloats.Empty);
        if (accelerator is null)
        {
            for (int i = 0; i < n; i++)
            {
                var plan = tensors[i];
                FirstMoments[i] = plan.HasFirstMoment ? new float[plan.Buckets] : Array.Empty<float>();
                SecondMoments[i] = new float[plan.Buckets];
                SumM[i] = plan.IsDense || !plan.HasFirstMoment ? AlignedFloats.Empty : new AlignedFloats(plan.Buckets);
                SumV[i] = plan.IsDense ? AlignedFloats.Empty : new AlignedFloats(plan.Buckets);
            }
        }
        else
        {
            DeviceFirstMoments = new ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[n];
            DeviceSecondMoments = new ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[n];
            DeviceSumM = new ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[n];
            DeviceSumV = new ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[n];
            for (int i = 0; i < n; i++)
            {
                var plan = tensors[i];
                DeviceFirstMoments[i] = accelerator.Allocate1D<float>(plan.HasFirstMoment ? plan.Buckets : 1);
                DeviceSecondMoments[i] = accelerator.Allocate1D<float>(plan.Buckets);
                DeviceSumM[i] = accelerator.Allocate1D<float>(plan.IsDense || !plan.HasFirstMoment ? 1 : plan.Buckets);
                DeviceSumV[i] = accelerator.Allocate1D<float>(plan.IsDense ? 1 : plan.Buckets);
                DeviceFirstMoments[i].MemSetToZero();
                DeviceSecondMoments[i].MemSetToZero();
            }
            DeviceFlag = accelerator.Allocate1D<int>(1);
            accelerator.Synchronize();
        }
    }

    /// <summary>The settings this optimizer was built with.</summary>
    public OptimizerSettings Settings { get; }
    /// <summary>One plan per tensor, in declaration order.</summary>
    public IReadOnlyList<TensorPlan> Tensors { get; }
    /// <summary>The ILGPU accelerator holding the state, or null for CPU state.</summary>
    public ILGPU.Runtime.Accelerator? Accelerator { get; }
    /// <summary>Number of applied steps, t.</summary>
    public int StepCount { get; protected set; }
    /// <summary>Steps skipped because a gradient was not finite.</summary>
    public long SkippedSteps { get; private set; }
    /// <summary>What a step does with a non-finite gradient. Default <see cref="NonFinitePolicy.Skip"/>.</summary>
    public NonFinitePolicy NonFinitePolicy { get; set; } = NonFinitePolicy.Skip;
    /// <summary>Upper bound on CPU threads a step uses. Default: all processors. Results are bit-identical for any value.</summary>
    public int MaxThreads { get; set; } = Environment.ProcessorCount;

    /// <summary>Bytes of optimizer state: Σ (β1 ≠ 0 ? 2 : 1)·k·4 over tensors (k = d for dense tensors).</summary>
    public long StateBytes
    {
        get { long s = 0; foreach (var t in Tensors) s += t.StateFloats * sizeof(float); return s; }
    }

    /// <summary>Bytes dense AdamW would keep for the same tensors: 8 per parameter.</summary>
    public long DenseAdamWStateBytes
    {
        get { long s = 0; foreach (var t in Tensors) s += 8L * t.Length; return s; }
    }

    /// <summary>Total parameters over all tensors.</summary>
    public long ParameterCount
    {
        get { long s = 0; foreach (var t in Tensors) s += t.Length; return s; }
    }

    // CPU state: per tensor; empty arrays where a moment is not kept.
    protected float[][] FirstMoments { get; }
    protected float[][] SecondMoments { get; }
    // CPU workspace for phase 1 (bucket sums), not state: empty for dense tensors. 64-byte aligned, so that phase 1 of a large
    // Rotation tensor can write it with non-temporal stores (RotationCpu.AccumulateTile).
    protected AlignedFloats[] SumM { get; }
    protected AlignedFloats[] SumV { get; }
    // Device state (null on CPU).
    protected ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[]? DeviceFirstMoments { get; }
    protected ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[]? DeviceSecondMoments { get; }
    protected ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[]? DeviceSumM { get; }
    protected ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[]? DeviceSumV { get; }
    /// <summary>One int on the device, set to 1 by a phase-1 kernel that saw a non-finite gradient.</summary>
    protected ILGPU.Runtime.MemoryBuffer1D<int, ILGPU.Stride1D.Dense>? DeviceFlag { get; }

    /// <summary>A copy of tensor <paramref name="tensor"/>'s first-moment state (k floats, d when dense; empty when β1 = 0), from the device when the state lives there.</summary>
    public float[] CopyFirstMoment(int tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Tensors[tensor].HasFirstMoment) return Array.Empty<float>();
        return DeviceFirstMoments is null ? (float[])FirstMoments[tensor].Clone() : DeviceFirstMoments[tensor].GetAsArray1D();
    }

    /// <summary>A copy of tensor <paramref name="tensor"/>'s second-moment state (k floats, d when dense), from the device when the state lives there.</summary>
    public float[] CopySecondMoment(int tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return DeviceSecondMoments is null ? (float[])SecondMoments[tensor].Clone() : DeviceSecondMoments[tensor].GetAsArray1D();
    }

    /// <summary>Starts a step: checks disposal, mode and learning rate, and takes the one-step-at-a-time guard.</summary>
    protected StepScalars BeginStep(float learningRate, bool onDevice)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (onDevice && Accelerator is null)
            throw new InvalidOperationException("This optimizer keeps its state on the CPU; construct it with an ILGPU Accelerator to step ArrayView buffers.");
        if (!onDevice && Accelerator is not null)
            throw new InvalidOperationException($"This optimizer keeps its state on the accelerator '{Accelerator.Name}'; step it with ArrayView buffers.");
        if (!float.IsFinite(learningRate) || learningRate < 0)
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, $"The learning rate must be finite and >= 0, got {learningRate}.");
        if (Interlocked.CompareExchange(ref _busy, Environment.CurrentManagedThreadId, 0) != 0)
            throw new InvalidOperationException("Step was called concurrently on one optimizer; steps must not overlap. Nothing was changed by the refused call.");
        int t = StepCount + 1;
        return StepScalars.For(t, learningRate, Settings.Beta1, Settings.Beta2, Settings.WeightDecay);
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the tensor when a buffer has the wrong length.</summary>
    protected void ValidateTensor(int index, long parameterLength, long gradientLength)
    {
        var plan = Tensors[index];
        if (parameterLength != plan.Length)
            throw new ArgumentException($"Tensor '{plan.Name}': the parameter buffer has {parameterLength} elements, expected {plan.Length}.", plan.Name);
        if (gradientLength != plan.Length)
            throw new ArgumentException($"Tensor '{plan.Name}': the gradient buffer has {gradientLength} elements, expected {plan.Length}.", plan.Name + "Grad");
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> when fewer or more buffers than tensors were passed,
    /// naming the first tensor without a buffer.
    /// </summary>
    protected void ValidateBufferCounts(int parameterCount, int gradientCount)
    {
        int n = Tensors.Count;
        if (parameterCount < n)
            throw new ArgumentException($"Tensor '{Tensors[parameterCount].Name}' (index {parameterCount}) has no parameter buffer: expected {n} parameter buffers, one per tensor, got {parameterCount}.", "parameters");
        if (gradientCount < n)
            throw new ArgumentException($"Tensor '{Tensors[gradientCount].Name}' (index {gradientCount}) has no gradient buffer: expected {n} gradient buffers, one per tensor, got {gradientCount}.", "gradients");
        if (parameterCount > n)
            throw new ArgumentException($"Expected {n} parameter buffers, one per tensor, got {parameterCount}.", "parameters");
        if (gradientCount > n)
            throw new ArgumentException($"Expected {n} gradient buffers, one per tensor, got {gradientCount}.", "gradients");
    }

    /// <summary>Throws when tensor <paramref name="index"/>'s parameters overlap tensor <paramref name="other"/>'s parameter or gradient buffer.</summary>
    protected void ValidateNoCrossOverlap(int index, ReadOnlySpan<float> parameters, int other, ReadOnlySpan<float> otherParameters, ReadOnlySpan<float> otherGradient)
    {
        if (parameters.Overlaps(otherParameters))
            throw new ArgumentException($"Tensor '{Tensors[index].Name}': the parameter buffer overlaps the parameter buffer of tensor '{Tensors[other].Name}'.", Tensors[index].Name);
        if (parameters.Overlaps(otherGradient))
            throw new ArgumentException($"Tensor '{Tensors[index].Name}': the parameter buffer overlaps the gradient buffer of tensor '{Tensors[other].Name}'.", Tensors[index].Name);
    }

    /// <summary>Throws when a tensor's parameter and gradient buffers overlap in memory.</summary>
    protected void ValidateNoOverlap(int index, ReadOnlySpan<float> parameters, ReadOnlySpan<float> gradient)
    {
        if (parameters.Overlaps(gradient))
            throw new ArgumentException($"Tensor '{Tensors[index].Name}': the parameter and gradient buffers overlap in memory.", Tensors[index].Name);
    }

    /// <summary>Throws when a device buffer belongs to another accelerator.</summary>
    protected void ValidateDevice(int index, ILGPU.ArrayView<float> parameters, ILGPU.ArrayView<float> gradient)
    {
        var plan = Tensors[index];
        if (!parameters.IsValid || !gradient.IsValid)
            throw new ArgumentException($"Tensor '{plan.Name}': a device buffer is not a valid view.", plan.Name);
        if (parameters.GetAccelerator() != Accelerator || gradient.GetAccelerator() != Accelerator)
            throw new ArgumentException($"Tensor '{plan.Name}': the buffers belong to another accelerator than the optimizer's '{Accelerator?.Name}'.", plan.Name);
        ValidateTensor(index, parameters.Length, gradient.Length);
    }

    /// <summary>Ends a step: advances t when finite; otherwise counts the skip or throws per policy. Releases the guard.</summary>
    protected StepOutcome EndStep(bool finite)
    {
        try
        {
            if (finite) { StepCount++; return StepOutcome.Applied; }
            if (NonFinitePolicy == NonFinitePolicy.Throw)
                throw new NonFiniteGradientException($"A gradient holds NaN or ±Inf at step {StepCount + 1}; nothing was changed.");
            SkippedSteps++;
            return StepOutcome.SkippedNonFinite;
        }
        finally { ReleaseGuard(); }
    }

    /// <summary>
    /// Releases the guard after an exception thrown before any state was written. Only the thread
    /// that took the guard releases it, so calling it after <see cref="EndStep"/> (or from a refused
    /// concurrent call) never frees a step running on another thread.
    /// </summary>
    protected void AbortStep() => ReleaseGuard();

    private void ReleaseGuard() => Interlocked.CompareExchange(ref _busy, 0, Environment.CurrentManagedThreadId);

    /// <summary>Called once by <see cref="Dispose"/> before the state buffers are released: derived types free their own resources here.</summary>
    protected virtual void OnDispose() { }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        OnDispose();
        if (DeviceFirstMoments is not null)
        {
            for (int i = 0; i < Tensors.Count; i++)
            {
                DeviceFirstMoments[i].Dispose(); DeviceSecondMoments![i].Dispose();
                DeviceSumM![i].Dispose(); DeviceSumV![i].Dispose();
            }
            DeviceFlag!.Dispose();
        }
        GC.SuppressFinalize(this);
    }
}
