using Collins.Kernels;
using ILGPU;
using ILGPU.Runtime;

namespace Collins;

/// <summary>What a guarded <c>Step</c> did.</summary>
public enum StepOutcome
{
    /// <summary>The step was applied: parameters, moments and the step counter advanced.</summary>
    Applied = 0,
    /// <summary>A gradient held NaN or ±Inf, or an entry whose square overflows float: nothing was changed (parameters, moments and step counter are bit-identical).</summary>
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

/// <summary>
/// Which gradient made a step refuse: the first tensor (in declaration order) whose gradient holds an entry whose square is not a
/// finite float (NaN, ±Inf, or |g| above about 1.8e19), or whose per-bucket Σg² overflowed.
/// </summary>
/// <param name="TensorIndex">Position of the tensor in the optimizer's <see cref="SketchedOptimizerBase.Tensors"/>.</param>
/// <param name="TensorName">The tensor's name.</param>
/// <param name="ElementIndex">
/// The first entry of that tensor's gradient whose square is not finite, or −1 when every single entry is finite and only a bucket's
/// sum of squares overflowed, or when the gradient lives on a device (not read back).
/// </param>
/// <param name="Step">The 1-based index of the step that was refused.</param>
public readonly record struct NonFiniteGradient(int TensorIndex, string TensorName, long ElementIndex, int Step)
{
    /// <summary>A sentence naming the tensor (and entry, when known).</summary>
    public override string ToString()
        => ElementIndex >= 0
            ? $"tensor '{TensorName}' (index {TensorIndex}): gradient entry {ElementIndex} is NaN, ±Inf, or so large that its square overflows float, at step {Step}"
            : $"tensor '{TensorName}' (index {TensorIndex}): the gradient is not finite or the sum of its squares over a bucket overflows float, at step {Step}";
}

/// <summary>A gradient held NaN or ±Inf, or an entry whose square overflows float, and the policy is <see cref="NonFinitePolicy.Throw"/>. Nothing was changed.</summary>
public sealed class NonFiniteGradientException : Exception
{
    public NonFiniteGradientException(string message) : base(message) { }

    public NonFiniteGradientException(string message, NonFiniteGradient gradient) : base(message) => Gradient = gradient;

    /// <summary>The tensor (and entry, when known) whose gradient made the step refuse; null when the optimizer could not tell.</summary>
    public NonFiniteGradient? Gradient { get; }
}

/// <summary>
/// Per-step scalars shared by every kernel (CPU and ILGPU). Compile-time settings (β1, β2, ε) are
/// literals in generated kernels; these are the values that change from step to step.
/// </summary>
public readonly struct StepScalars
{
    public StepScalars(float learningRate, float decay, float invBiasCorrection1, float invSqrtBiasCorrection2, int step)
        : this(learningRate, decay, invBiasCorrection1, invSqrtBiasCorrection2, step, 1f) { }

    /// <summary>As the other constructor, with the gradient scale s of global gradient-norm clipping (<see cref="GradientScale"/>).</summary>
    public StepScalars(float learningRate, float decay, float invBiasCorrection1, float invSqrtBiasCorrection2, int step, float gradientScale)
    {
        LearningRate = learningRate;
        Decay = decay;
        InvBiasCorrection1 = invBiasCorrection1;
        InvSqrtBiasCorrection2 = invSqrtBiasCorrection2;
        Step = step;
        GradientScale = gradientScale;
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
    /// <summary>
    /// s, the factor of global gradient-norm clipping (<see cref="OptimizerSettings.MaxGradientNorm"/>): phase 2 of every kind of
    /// tensor uses s·g wherever it uses the gradient g. 1 (the constructors' and <see cref="For"/>'s value) when clipping is off or
    /// the norm is within the bound; multiplying by 1 is exact, so such a step is bit-identical to one without clipping.
    /// (<c>default(StepScalars)</c> has 0 here, as in every other member: it is no step.)
    /// </summary>
    public float GradientScale { get; }

    /// <summary>These scalars with gradient scale <paramref name="gradientScale"/> (<see cref="GradientScale"/>).</summary>
    public StepScalars WithGradientScale(float gradientScale)
        => new(LearningRate, Decay, InvBiasCorrection1, InvSqrtBiasCorrection2, Step, gradientScale);

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
/// source-generated ones and the run-time <see cref="CountSketchAdam"/>. This class owns the moments, the CPU engine
/// (<see cref="CpuTensorKernel"/>, one per tensor), the step counter, the non-finite policy, checkpoints and the
/// thread-safety guard; derived types supply their plans and, for an accelerator, their device kernels.
/// </summary>
/// <remarks>
/// A CPU step is <see cref="StepCpu{TBuffers}"/> over the caller's buffers (an <see cref="IStepBuffers"/> struct); a device
/// step is <see cref="StepDevice{TBuffers}"/>, which calls the derived type's <see cref="LoadDeviceKernels"/>,
/// <see cref="DeviceAccumulate"/> and <see cref="DeviceApply"/>. Both take the guard (<see cref="BeginStep"/>), validate every
/// buffer before any write, run phase 1 (bucket sums into the workspace, no state written, one verdict per tensor through
/// <see cref="NoteFinite"/> or the per-tensor device flags), phase 2 only when every verdict is finite, and end with
/// <see cref="EndStep"/> (advances t, or counts / throws the refusal) or <see cref="AbortStep"/> on an exception.
/// </remarks>
public abstract partial class SketchedOptimizerBase : IDisposable
{
    private int _busy;
    private bool _disposed;

    protected SketchedOptimizerBase(OptimizerSettings settings, IReadOnlyList<TensorPlan> tensors, ILGPU.Runtime.Accelerator? accelerator)
        : this(settings, tensors, accelerator, tuning: null)
    {
    }

    /// <param name="settings">The optimizer's settings.</param>
    /// <param name="tensors">Its tensors' plans.</param>
    /// <param name="accelerator">The accelerator of its state, or null for CPU state.</param>
    /// <param name="tuning">The CPU tuning of its kernels (speed only, never a value); null: <see cref="CpuTuning.Current"/>.</param>
    private protected SketchedOptimizerBase(OptimizerSettings settings, IReadOnlyList<TensorPlan> tensors, ILGPU.Runtime.Accelerator? accelerator,
                                            CpuTuning? tuning)
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
        FirstMomentCodes = new byte[n][];
        Array.Fill(FirstMomentCodes, Array.Empty<byte>());
        SumM = new AlignedFloats[n];
        SumV = new AlignedFloats[n];
        Array.Fill(SumM, AlignedFloats.Empty);
        Array.Fill(SumV, AlignedFloats.Empty);
        if (accelerator is null)
        {
            _cpuKernels = new CpuTensorKernel[n];
            for (int i = 0; i < n; i++)
            {
                var plan = tensors[i];
                FirstMoments[i] = new float[plan.FirstMomentFloats];
                FirstMomentCodes[i] = plan.IsQuantized ? new byte[plan.FirstMomentCodeBytes] : Array.Empty<byte>();
                _cpuKernels[i] = CpuTensorKernel.Create(plan, settings, FirstMomentCodes[i], tuning);
                SecondMoments[i] = new float[plan.SecondMomentFloats];
                // The workspace of the bucket sums (a factored tensor's kernel keeps its own row and column sums).
                SumM[i] = plan.IsDense || plan.IsFactored || !plan.HasFirstMoment ? AlignedFloats.Empty : new AlignedFloats(plan.Buckets);
                SumV[i] = plan.IsDense || plan.IsFactored ? AlignedFloats.Empty : new AlignedFloats(plan.Buckets);
            }
            _cpuBatch = new TensorBatch(_cpuKernels, tensors, FirstMoments, SecondMoments, SumM, SumV);
        }
        else
        {
            DeviceFirstMoments = new ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[n];
            DeviceSecondMoments = new ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[n];
            DeviceSumM = new ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[n];
            DeviceSumV = new ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[n];
            DeviceFirstMomentCodes = new ILGPU.Runtime.MemoryBuffer1D<byte, ILGPU.Stride1D.Dense>[n];
            for (int i = 0; i < n; i++)
            {
                // Sized from the plan: k floats per moment for a sketch (d when dense), R + C for a factored v, the block scales and
                // the codes of a quantised m; a buffer a tensor does not use keeps one element (ILGPU views of length 0 are invalid).
                var plan = tensors[i];
                DeviceFirstMoments[i] = accelerator.Allocate1D<float>(Math.Max(1, plan.FirstMomentFloats));
                DeviceSecondMoments[i] = accelerator.Allocate1D<float>(plan.SecondMomentFloats);
                DeviceFirstMomentCodes[i] = accelerator.Allocate1D<byte>(Math.Max(1, plan.FirstMomentCodeBytes));
                DeviceSumM[i] = accelerator.Allocate1D<float>(plan.IsDense || plan.IsFactored || !plan.HasFirstMoment ? 1 : plan.Buckets);
                DeviceSumV[i] = accelerator.Allocate1D<float>(plan.IsDense || plan.IsFactored ? 1 : plan.Buckets);
                DeviceFirstMoments[i].MemSetToZero();
                DeviceSecondMoments[i].MemSetToZero();
                DeviceFirstMomentCodes[i].MemSetToZero();
            }
            DeviceFlag = accelerator.Allocate1D<int>(n);
            _deviceFlags = new int[n];
            if (settings.MaxGradientNorm > 0)
            {
                // Gradient-norm clipping: what each tensor's Σ g² is reduced from (DeviceGradientSquaresSource) sizes the workspace.
                int longest = tensors.Max(t => t.IsDense ? t.Length : t.IsFactored ? t.FactorRows : t.Buckets);
                _deviceNorm = new DeviceGradientNorm(accelerator, n, longest);
                _deviceSquares = new double[n];
            }
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
    /// <summary>Steps skipped because a gradient was not finite (saturates at <see cref="long.MaxValue"/>).</summary>
    public long SkippedSteps { get; private set; }
    /// <summary>What a step does with a non-finite gradient. Default <see cref="NonFinitePolicy.Skip"/>.</summary>
    public NonFinitePolicy NonFinitePolicy { get; set; } = NonFinitePolicy.Skip;
    /// <summary>Upper bound on CPU threads a step uses, at least 1. Default: all processors. Results are bit-identical for any value.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The value is 0 or negative; the setting is unchanged.</exception>
    public int MaxThreads
    {
        get => _maxThreads;
        set
        {
            if (value < 1)
                throw new ArgumentOutOfRangeException(nameof(MaxThreads), value, $"MaxThreads must be at least 1, got {value}.");
            _maxThreads = value;
        }
    }

    private int _maxThreads = Environment.ProcessorCount;

    /// <summary>
    /// The gradient that made the most recent refused step skip (or throw): tensor, entry where known, step. Null until a step is
    /// refused; a later applied step does not clear it (compare <see cref="NonFiniteGradient.Step"/> with <see cref="StepCount"/>).
    /// </summary>
    public NonFiniteGradient? LastNonFinite { get; private set; }

    /// <summary>
    /// With <see cref="OptimizerSettings.MaxGradientNorm"/> &gt; 0: ‖g‖, the global norm of the gradients of the most recent applied
    /// step before clipping (√ of Σ g² over every tensor, as <c>clip_grad_norm_</c> returns it). NaN before the first applied step and
    /// without clipping; a refused step leaves it as it was.
    /// </summary>
    public double LastGradientNorm { get; private set; } = double.NaN;

    // First tensor whose phase 1 reported a non-finite verdict in the running step (−1: none), and the entry when known.
    private int _nonFiniteTensor = -1;
    private long _nonFiniteElement = -1;
    // Host copy of the per-tensor device flags (allocated once).
    private readonly int[]? _deviceFlags;
    // One CPU kernel per tensor, of its kind (CPU state only): the engine every CPU step runs.
    private readonly CpuTensorKernel[]? _cpuKernels;
    // The small tensors' batch of the CPU step (TensorBatch; CPU state only).
    private readonly TensorBatch? _cpuBatch;

    /// <summary>
    /// Whether a CPU step on <paramref name="threads"/> threads steps tensor <paramref name="tensor"/> in the small tensors' batch
    /// (<see cref="TensorBatch"/>) rather than in its own parallel run. For tests; results are the same either way.
    /// </summary>
    internal bool IsBatchedOnCpu(int tensor, int threads)
    {
        var batch = _cpuBatch ?? throw new InvalidOperationException("The optimizer keeps its state on a device.");
        batch.Prepare(threads);
        return batch.IsBatched(tensor);
    }

    /// <summary>Tensor <paramref name="tensor"/>'s CPU kernel (tests read its per-step diagnostics).</summary>
    internal CpuTensorKernel CpuKernelOf(int tensor) => (_cpuKernels ?? throw new InvalidOperationException("This optimizer keeps its state on a device."))[tensor];
    // Device state with MaxGradientNorm > 0 only: the per-tensor Σ g² reduction and its host copy (allocated once).
    private readonly DeviceGradientNorm? _deviceNorm;
    private readonly double[]? _deviceSquares;

    /// <summary>
    /// Bytes of optimizer state: Σ over tensors of <see cref="TensorPlan.StateBytes"/> — (β1 ≠ 0 ? 2 : 1)·k·4 for a sketch (k = d for
    /// dense tensors), 4·(R + C) for a factored v, and 4·ceil(d / block) + d (8-bit) or ceil(d / block)·block / 2 (4-bit) for a quantised m.
    /// </summary>
    public long StateBytes
    {
        get { long s = 0; foreach (var t in Tensors) s += t.StateBytes; return s; }
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
    // CPU state of a quantised first moment (TensorPlan.IsQuantized): its codes (FirstMoments then holds the block scales); empty otherwise.
    protected byte[][] FirstMomentCodes { get; }
    // CPU workspace for phase 1 (bucket sums), not state: empty for dense tensors. 64-byte aligned, so that phase 1 of a large
    // Rotation tensor can write it with non-temporal stores (RotationCpu.AccumulateTile).
    protected AlignedFloats[] SumM { get; }
    protected AlignedFloats[] SumV { get; }
    // Device state (null on CPU).
    protected ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[]? DeviceFirstMoments { get; }
    protected ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[]? DeviceSecondMoments { get; }
    protected ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[]? DeviceSumM { get; }
    protected ILGPU.Runtime.MemoryBuffer1D<float, ILGPU.Stride1D.Dense>[]? DeviceSumV { get; }
    /// <summary>
    /// Device codes of each tensor's quantised first moment (<see cref="TensorPlan.FirstMomentCodeBytes"/> bytes, the CPU format;
    /// one unused byte when m is not quantised); null on CPU.
    /// </summary>
    protected ILGPU.Runtime.MemoryBuffer1D<byte, ILGPU.Stride1D.Dense>[]? DeviceFirstMomentCodes { get; }
    /// <summary>One int per tensor on the device, set to 1 by that tensor's phase-1 kernel when it saw a non-finite gradient (<see cref="DeviceFlagOf"/>).</summary>
    protected ILGPU.Runtime.MemoryBuffer1D<int, ILGPU.Stride1D.Dense>? DeviceFlag { get; }

    /// <summary>
    /// A copy of the codes of tensor <paramref name="tensor"/>'s quantised first moment (<see cref="TensorPlan.FirstMomentCodeBytes"/>
    /// bytes, layout in <see cref="TensorPlan.FirstMoment"/>'s docs); empty when m is not quantised.
    /// </summary>
    public byte[] CopyFirstMomentCodes(int tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return ReadCodes(tensor, copy: true);
    }

    /// <summary>The codes of tensor <paramref name="tensor"/> (the CPU array itself unless <paramref name="copy"/>, or a copy from the device).</summary>
    private byte[] ReadCodes(int tensor, bool copy)
    {
        if (DeviceFirstMomentCodes is null) return copy ? (byte[])FirstMomentCodes[tensor].Clone() : FirstMomentCodes[tensor];
        int bytes = Tensors[tensor].FirstMomentCodeBytes;
        if (bytes == 0) return [];
        var codes = new byte[bytes];
        DeviceFirstMomentCodes[tensor].View.SubView(0, bytes).CopyToCPU(codes);
        return codes;
    }

    /// <summary>
    /// Tensor <paramref name="tensor"/>'s quantised first moment as the next step reads it, one float per entry: m[i] = q[i]·(scale / Q).
    /// </summary>
    /// <exception cref="InvalidOperationException">The tensor's first moment is not quantised.</exception>
    public float[] DequantizeFirstMoment(int tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var plan = Tensors[tensor];
        if (!plan.IsQuantized) throw new InvalidOperationException($"Tensor '{plan.Name}' does not keep a quantised first moment.");
        var m = new float[plan.Length];
        byte[] codes = ReadCodes(tensor, copy: false);
        float[] scales = DeviceFirstMoments is null ? FirstMoments[tensor] : DeviceFirstMoments[tensor].GetAsArray1D();
        for (int b = 0; b < plan.QuantizedBlocks; b++)
        {
            int start = b * plan.QuantizationBlock, len = Math.Min(plan.QuantizationBlock, plan.Length - start);
            BlockQuantizer.Dequantize(codes, plan.FirstMoment == FirstMomentStorage.Quantized4, plan.QuantizationBlock, start, scales[b],
                                      plan.QuantizationLevels, m.AsSpan(start, len));
        }
        return m;
    }

    /// <summary>A copy of tensor <paramref name="tensor"/>'s first-moment state (k floats, d when dense; the block scales when quantised; empty when β1 = 0), from the device when the state lives there.</summary>
    public float[] CopyFirstMoment(int tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!Tensors[tensor].HasFirstMoment) return Array.Empty<float>();
        return DeviceFirstMoments is null ? (float[])FirstMoments[tensor].Clone() : DeviceFirstMoments[tensor].GetAsArray1D();
    }

    /// <summary>A copy of tensor <paramref name="tensor"/>'s second-moment state (k floats, d when dense, R + C when factored), from the device when the state lives there.</summary>
    public float[] CopySecondMoment(int tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return DeviceSecondMoments is null ? (float[])SecondMoments[tensor].Clone() : DeviceSecondMoments[tensor].GetAsArray1D();
    }

    /// <summary>Starts a step: checks disposal, mode and learning rate, and takes the one-step-at-a-time guard.</summary>
    protected StepScalars BeginStep(float learningRate, bool onDevice)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // The guard first: the checks below read state (the step counter) that only the guard's holder may change, so a check
        // made before taking it could pass on a value another step is about to advance.
        if (Interlocked.CompareExchange(ref _busy, Environment.CurrentManagedThreadId, 0) != 0)
            throw new InvalidOperationException("Step was called concurrently on one optimizer; steps must not overlap. Nothing was changed by the refused call.");
        try
        {
            if (onDevice && Accelerator is null)
                throw new InvalidOperationException("This optimizer keeps its state on the CPU; construct it with an ILGPU Accelerator to step ArrayView buffers.");
            if (!onDevice && Accelerator is not null)
                throw new InvalidOperationException($"This optimizer keeps its state on the accelerator '{Accelerator.Name}'; step it with ArrayView buffers.");
            if (!float.IsFinite(learningRate) || learningRate < 0)
                throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, $"The learning rate must be finite and >= 0, got {learningRate}.");
            if (StepCount == int.MaxValue)
                throw new InvalidOperationException($"The step counter is at its limit ({int.MaxValue} applied steps); another step would overflow it. Nothing was changed.");
        }
        catch
        {
            ReleaseGuard();
            throw;
        }
        _nonFiniteTensor = -1;
        _nonFiniteElement = -1;
        int t = StepCount + 1;
        return StepScalars.For(t, learningRate, Settings.Beta1, Settings.Beta2, Settings.WeightDecay);
    }

    /// <summary>
    /// The CPU step, written once for every optimizer: validates every buffer (<see cref="ValidateBuffers{TBuffers}"/>), runs
    /// phase 1 of every tensor's kernel (<see cref="CpuTensorKernel"/>: bucket sums into the workspace, nothing of the state
    /// written) and, only when every verdict is finite, phase 2 (moments, then parameters; with
    /// <see cref="OptimizerSettings.MaxGradientNorm"/> &gt; 0 first the global norm and <see cref="StepScalars.GradientScale"/>
    /// from phase 1's sums of squares, <see cref="ClipScale"/>); then advances the step counter, or
    /// counts / throws the refusal per <see cref="NonFinitePolicy"/>. Generated optimizers and <see cref="CountSketchAdam"/> both
    /// call it, which is why they are bit-identical. In each phase the small tensors run in one batch, a whole tensor per thread
    /// (<see cref="TensorBatch"/>), and the others each in its own parallel run; the verdicts are then noted in tensor order.
    /// </summary>
    protected StepOutcome StepCpu<TBuffers>(float learningRate, scoped ref TBuffers buffers) where TBuffers : IStepBuffers, allows ref struct
    {
        var scalars = BeginStep(learningRate, onDevice: false);
        bool finite = true;
        try
        {
            ValidateBuffers(ref buffers);
            var kernels = _cpuKernels!;
            var batch = _cpuBatch!;
            int threads = MaxThreads;
            // The small tensors run in one batch (a tensor per tile, TensorBatch), the others each in its own parallel run; every
            // kernel's result is the same either way, and the verdicts and Σ g² are taken in tensor order below.
            batch.Prepare(threads);
            var verdicts = batch.Verdicts;
            for (int i = 0; i < kernels.Length; i++)
                if (!batch.IsBatched(i))
                    verdicts[i] = kernels[i].Accumulate(threads, buffers.Parameters(i), buffers.Gradient(i), FirstMoments[i], SecondMoments[i], SumM[i], SumV[i], scalars);
            batch.Accumulate(ref buffers, threads, in scalars);
            for (int i = 0; i < kernels.Length; i++) finite &= NoteFinite(i, verdicts[i], buffers.Gradient(i));
            if (finite)
            {
                if (Settings.MaxGradientNorm > 0)
                {
                    double squares = 0;
                    foreach (var kernel in kernels) squares += kernel.GradientSquares;
                    scalars = scalars.WithGradientScale(ClipScale(squares));
                }
                for (int i = 0; i < kernels.Length; i++)
                    if (!batch.IsBatched(i))
                        kernels[i].Apply(threads, buffers.Parameters(i), buffers.Gradient(i), FirstMoments[i], SecondMoments[i], SumM[i], SumV[i], scalars);
                batch.Apply(ref buffers, threads, in scalars);
            }
        }
        catch
        {
            AbortStep();
            throw;
        }
        return EndStep(finite);
    }

    /// <summary>
    /// Global gradient-norm clipping, between the phases of a finite step: ‖g‖ = √<paramref name="squares"/>, the Σ over the
    /// tensors, in order and in double, of each tensor's Σ g² (<see cref="CpuTensorKernel.GradientSquares"/> on the CPU, the device's
    /// per-tensor reduction on an accelerator), recorded in <see cref="LastGradientNorm"/>; returns
    /// s = (float)(MaxGradientNorm / (‖g‖ + 1e-6)) when that coefficient is below 1, else 1 (clip_grad_norm_'s rule). The sums are
    /// finite floats (the verdict), so ‖g‖ is finite: a double overflows only past about 10^270 of them.
    /// </summary>
    private float ClipScale(double squares)
    {
        double norm = Math.Sqrt(squares);
        LastGradientNorm = norm;
        double coefficient = Settings.MaxGradientNorm / (norm + 1e-6);
        return coefficient < 1 ? (float)coefficient : 1f;
    }

    /// <summary>
    /// The device step, written once for every optimizer: validates every view (<see cref="ValidateDeviceBuffers{TBuffers}"/>),
    /// lets the derived type load its kernels, launches every tensor's phase 1 (<see cref="DeviceAccumulate"/>: bucket sums and
    /// that tensor's flag; with <see cref="OptimizerSettings.MaxGradientNorm"/> &gt; 0 also the reduction of its Σ g² into one
    /// double), reads the flags after one synchronisation and, only when none is raised, (with clipping: reads the n doubles and
    /// forms ‖g‖ and s as <see cref="StepCpu{TBuffers}"/> does) launches every phase 2 (<see cref="DeviceApply"/>) and waits for it. Derived types supply only the kernels: unrolled and specialised ones in
    /// generated optimizers, generic ones in <see cref="CountSketchAdam"/>.
    /// </summary>
    protected StepOutcome StepDevice<TBuffers>(float learningRate, scoped ref TBuffers buffers) where TBuffers : IDeviceStepBuffers, allows ref struct
    {
        var scalars = BeginStep(learningRate, onDevice: true);
        bool finite;
        try
        {
            ValidateDeviceBuffers(ref buffers);
            LoadDeviceKernels();
            ClearDeviceFlags();
            int n = Tensors.Count;
            var norm = _deviceNorm;
            for (int i = 0; i < n; i++)
            {
                var g = buffers.Gradient(i);
                DeviceAccumulate(i, g, DeviceFlagOf(i));
                if (norm is not null)
                {
                    var (values, square) = DeviceGradientSquaresSource(i, g);
                    norm.Reduce(i, values, square);
                }
            }
            finite = ReadDeviceVerdict();
            if (finite)
            {
                if (norm is not null)
                {
                    // After the verdict's synchronisation: a refused step never reads these (its sums may be NaN).
                    var tensorSquares = _deviceSquares!;
                    norm.Read(tensorSquares);
                    double squares = 0;
                    foreach (double x in tensorSquares) squares += x;
                    scalars = scalars.WithGradientScale(ClipScale(squares));
                }
                for (int i = 0; i < n; i++) DeviceApply(i, buffers.Parameters(i), buffers.Gradient(i), in scalars);
                Accelerator!.Synchronize();
            }
        }
        catch
        {
            AbortStep();
            throw;
        }
        return EndStep(finite);
    }

    private Kernels.DeviceTensorKernels[]? _deviceKernels;

    /// <summary>
    /// Compiles and caches the device kernels (called at the start of every device step; load once). By default it asks
    /// <see cref="CreateDeviceKernels"/> once for one kernel set per tensor, as generated optimizers do.
    /// </summary>
    protected virtual void LoadDeviceKernels()
    {
        if (_deviceKernels is not null) return;
        var kernels = CreateDeviceKernels(Accelerator!);
        if (kernels is null || kernels.Length != Tensors.Count || Array.IndexOf(kernels, null) >= 0)
        {
            if (kernels is not null) DisposeKernels(kernels);
            throw new InvalidOperationException($"{GetType().Name}.CreateDeviceKernels must return one kernel set per tensor ({Tensors.Count}).");
        }
        try
        {
            for (int i = 0; i < kernels.Length; i++) kernels[i].Bind(Tensors[i], Settings, DeviceFirstMomentCodes![i].View);
        }
        catch
        {
            DisposeKernels(kernels);
            throw;
        }
        _deviceKernels = kernels;
    }

    /// <summary>
    /// One loaded kernel set per tensor, in declaration order, for <paramref name="accelerator"/> (a set may be shared by
    /// several tensors). Generated optimizers override it with their descriptors; called once, by <see cref="LoadDeviceKernels"/>.
    /// </summary>
    protected virtual Kernels.DeviceTensorKernels[] CreateDeviceKernels(ILGPU.Runtime.Accelerator accelerator)
        => throw new NotSupportedException($"{GetType().Name} has no device kernels.");

    /// <summary>
    /// Launches tensor <paramref name="tensor"/>'s device phase 1: bucket sums of <paramref name="gradient"/> into
    /// <see cref="DeviceSumM"/>/<see cref="DeviceSumV"/> (a dense tensor checks its gradient only), raising
    /// <paramref name="flag"/>[0] when the verdict is not finite. Writes no state.
    /// </summary>
    protected virtual void DeviceAccumulate(int tensor, ILGPU.ArrayView<float> gradient, ILGPU.ArrayView<int> flag)
        => _deviceKernels![tensor].Accumulate(Tensors[tensor], gradient, DeviceSumM![tensor].AsContiguous(), DeviceSumV![tensor].AsContiguous(), flag);

    /// <summary>
    /// What tensor <paramref name="tensor"/>'s Σ g² is reduced from on the device, after its phase 1 (gradient-norm clipping only):
    /// the float sums that phase formed (a sketch's bucket sums of squares, a factored tensor's row sums), or a dense tensor's
    /// gradient itself with <c>Square</c> true.
    /// </summary>
    private protected virtual (ILGPU.ArrayView<float> Values, bool Square) DeviceGradientSquaresSource(int tensor, ILGPU.ArrayView<float> gradient)
        => _deviceKernels![tensor].GradientSquaresSource(Tensors[tensor], gradient, DeviceSumV![tensor].AsContiguous());

    /// <summary>Launches tensor <paramref name="tensor"/>'s device phase 2: its moments from the workspace, then its parameters.</summary>
    protected virtual void DeviceApply(int tensor, ILGPU.ArrayView<float> parameters, ILGPU.ArrayView<float> gradient, in StepScalars scalars)
        => _deviceKernels![tensor].Apply(Tensors[tensor], parameters, gradient, DeviceFirstMoments![tensor].AsContiguous(), DeviceSecondMoments![tensor].AsContiguous(),
                                         DeviceSumM![tensor].AsContiguous(), DeviceSumV![tensor].AsContiguous(), in scalars);

    private static void DisposeKernels(Kernels.DeviceTensorKernels?[] kernels)
    {
        foreach (var k in kernels.Distinct()) k?.Dispose();
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
        // The exceptions name the caller's Step parameters that the counts describe (CountSketchAdam.Step's parameters and
        // gradients), not this helper's own parameters.
#pragma warning disable CA2208
        int n = Tensors.Count;
        if (parameterCount < n)
            throw new ArgumentException($"Tensor '{Tensors[parameterCount].Name}' (index {parameterCount}) has no parameter buffer: expected {n} parameter buffers, one per tensor, got {parameterCount}.", "parameters");
        if (gradientCount < n)
            throw new ArgumentException($"Tensor '{Tensors[gradientCount].Name}' (index {gradientCount}) has no gradient buffer: expected {n} gradient buffers, one per tensor, got {gradientCount}.", "gradients");
        if (parameterCount > n)
            throw new ArgumentException($"Expected {n} parameter buffers, one per tensor, got {parameterCount}.", "parameters");
        if (gradientCount > n)
            throw new ArgumentException($"Expected {n} gradient buffers, one per tensor, got {gradientCount}.", "gradients");
#pragma warning restore CA2208
    }

    /// <summary>
    /// Validates every tensor's CPU buffers before anything is written: one buffer pair per tensor, each of the tensor's length,
    /// no parameter buffer overlapping its own gradient, and no tensor's parameters overlapping another tensor's parameters or
    /// gradient, for any number of tensors (gradients may share memory with each other: they are only read). Throws
    /// <see cref="ArgumentException"/> naming the tensor(s).
    /// </summary>
    protected void ValidateBuffers<TBuffers>(scoped ref TBuffers buffers) where TBuffers : IStepBuffers, allows ref struct
    {
        ValidateBufferCounts(buffers.ParameterCount, buffers.GradientCount);
        int n = Tensors.Count;
        for (int i = 0; i < n; i++)
        {
            Span<float> p = buffers.Parameters(i);
            ReadOnlySpan<float> g = buffers.Gradient(i);
            ValidateTensor(i, p.Length, g.Length);
            if (((ReadOnlySpan<float>)p).Overlaps(g))
                throw SelfOverlap(i);
        }
        for (int i = 0; i < n; i++)
        {
            ReadOnlySpan<float> p = buffers.Parameters(i);
            for (int j = 0; j < n; j++)
            {
                if (i == j) continue;
                if (j > i && p.Overlaps(buffers.Parameters(j)))
                    throw CrossOverlap(i, j, "parameter");
                if (p.Overlaps(buffers.Gradient(j)))
                    throw CrossOverlap(i, j, "gradient");
            }
        }
    }

    /// <summary>
    /// The device counterpart of <see cref="ValidateBuffers{TBuffers}"/>: one valid view pair per tensor, on this optimizer's
    /// accelerator, of the tensor's length, with the same aliasing rules (views alias when they share a buffer and their element
    /// ranges intersect).
    /// </summary>
    protected void ValidateDeviceBuffers<TBuffers>(scoped ref TBuffers buffers) where TBuffers : IDeviceStepBuffers, allows ref struct
    {
        ValidateBufferCounts(buffers.ParameterCount, buffers.GradientCount);
        int n = Tensors.Count;
        for (int i = 0; i < n; i++)
        {
            var plan = Tensors[i];
            ILGPU.ArrayView<float> p = buffers.Parameters(i), g = buffers.Gradient(i);
            if (!p.IsValid || !g.IsValid)
                throw new ArgumentException($"Tensor '{plan.Name}': a device buffer is not a valid view.", plan.Name);
            if (p.GetAccelerator() != Accelerator || g.GetAccelerator() != Accelerator)
                throw new ArgumentException($"Tensor '{plan.Name}': the buffers belong to another accelerator than the optimizer's '{Accelerator?.Name}'.", plan.Name);
            ValidateTensor(i, p.Length, g.Length);
            if (ViewsOverlap(p, g))
                throw SelfOverlap(i);
        }
        for (int i = 0; i < n; i++)
        {
            var p = buffers.Parameters(i);
            for (int j = 0; j < n; j++)
            {
                if (i == j) continue;
                if (j > i && ViewsOverlap(p, buffers.Parameters(j)))
                    throw CrossOverlap(i, j, "parameter");
                if (ViewsOverlap(p, buffers.Gradient(j)))
                    throw CrossOverlap(i, j, "gradient");
            }
        }
    }

    // The aliasing refusals of both validations (spans and views), worded once.
    private ArgumentException SelfOverlap(int tensor)
        => new($"Tensor '{Tensors[tensor].Name}': the parameter and gradient buffers overlap in memory.", Tensors[tensor].Name);

    private ArgumentException CrossOverlap(int tensor, int other, string otherBuffer)
        => new($"Tensor '{Tensors[tensor].Name}': the parameter buffer overlaps the {otherBuffer} buffer of tensor '{Tensors[other].Name}'.", Tensors[tensor].Name);

    // ArrayView implements these interface members explicitly; a constrained generic call reads them without boxing the view
    // (the O(n²) aliasing loop would otherwise box on every device step).
    private static MemoryBuffer BufferOf<TView>(TView view) where TView : struct, IArrayView => view.Buffer;
    private static long IndexOf<TView>(TView view) where TView : struct, IContiguousArrayView => view.Index;

    private static bool ViewsOverlap(ILGPU.ArrayView<float> a, ILGPU.ArrayView<float> b)
    {
        if (a.Length == 0 || b.Length == 0 || !ReferenceEquals(BufferOf(a), BufferOf(b))) return false;
        long ia = IndexOf(a), ib = IndexOf(b);
        return ia < ib + b.Length && ib < ia + a.Length;
    }

    /// <summary>
    /// Checks, once per optimizer construction, that a tensor's run-time plan has the sizes a generated type was compiled with (a
    /// generator and runtime of different versions would otherwise disagree silently); the overloads below add each layout's hash
    /// constants.
    /// </summary>
    protected static void VerifyPlan(TensorPlan plan, int length, int buckets, int rows, bool dense)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.Length != length || plan.Buckets != buckets || plan.Rows != rows || plan.IsDense != dense)
            throw PlanMismatch(plan.Name);
    }

    /// <summary>As <see cref="VerifyPlan(TensorPlan, int, int, int, bool)"/> for a Rotation tensor, rotations and signs included.</summary>
    protected static void VerifyPlan(TensorPlan plan, int length, int buckets, int rows, bool dense, ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs)
    {
        VerifyPlan(plan, length, buckets, rows, dense);
        if (!plan.Rotations.SequenceEqual(rotations) || !plan.Signs.SequenceEqual(signs)) throw PlanMismatch(plan.Name);
    }

    /// <summary>As <see cref="VerifyPlan(TensorPlan, int, int, int, bool)"/> for a Universal tensor, hash coefficients included.</summary>
    protected static void VerifyPlan(TensorPlan plan, int length, int buckets, int rows, bool dense, uint a, uint b, uint signA, uint signB)
    {
        VerifyPlan(plan, length, buckets, rows, dense);
        if (plan.UniversalA != a || plan.UniversalB != b || plan.UniversalSignA != signA || plan.UniversalSignB != signB) throw PlanMismatch(plan.Name);
    }

    /// <summary>As <see cref="VerifyPlan(TensorPlan, int, int, int, bool)"/> for a tensor with a factored second moment, its R × C view included.</summary>
    protected static void VerifyFactoredPlan(TensorPlan plan, int length, int buckets, int rows, bool dense, int factorRows, int factorColumns,
                                             int quantizedBlocks = 0, int codeBytes = 0)
    {
        VerifyPlan(plan, length, buckets, rows, dense);
        if (!plan.IsFactored || plan.FactorRows != factorRows || plan.FactorColumns != factorColumns) throw PlanMismatch(plan.Name);
        if (plan.QuantizedBlocks != quantizedBlocks || plan.FirstMomentCodeBytes != codeBytes) throw PlanMismatch(plan.Name);
    }

    private static InvalidOperationException PlanMismatch(string tensor)
        => new($"Tensor '{tensor}': the run-time plan disagrees with the generated constants; rebuild with matching Collins and Collins.Generators versions.");

    /// <summary>The exception the model-typed <c>Step</c> throws, before anything is written, when a tensor member of the model is null.</summary>
    protected static ArgumentException NullTensorMember(string tensor, string member)
        => new($"Tensor '{tensor}': the model's member '{member}' is null; assign it an array of the tensor's length before stepping.", tensor);

    /// <summary>
    /// Records phase 1's verdict for tensor <paramref name="tensor"/> and returns it. The first tensor (in call order) whose verdict
    /// is false is the one a refused step names (<see cref="LastNonFinite"/>, <see cref="NonFiniteGradientException"/>); on that
    /// path only, its gradient is scanned for the first entry whose square is not finite. Costs nothing when the verdict is true.
    /// </summary>
    protected bool NoteFinite(int tensor, bool finite, ReadOnlySpan<float> gradient)
    {
        if (!finite && _nonFiniteTensor < 0)
        {
            _nonFiniteTensor = tensor;
            _nonFiniteElement = DenseAdamWCpu.FirstNonFiniteSquare(gradient);
        }
        return finite;
    }

    /// <summary>The one-int view of <see cref="DeviceFlag"/> that tensor <paramref name="tensor"/>'s phase-1 kernels raise.</summary>
    protected ILGPU.ArrayView<int> DeviceFlagOf(int tensor) => DeviceFlag!.View.SubView(tensor, 1);

    /// <summary>Clears every tensor's device flag (before phase 1).</summary>
    protected void ClearDeviceFlags() => DeviceFlag!.MemSetToZero();

    /// <summary>
    /// Waits for phase 1 on the device, reads the per-tensor flags (into a host array allocated once) and returns the verdict,
    /// recording the first raised tensor for <see cref="LastNonFinite"/>.
    /// </summary>
    protected bool ReadDeviceVerdict()
    {
        Accelerator!.Synchronize();
        var flags = _deviceFlags!;
        DeviceFlag!.View.CopyToCPU(ref flags[0], flags.Length);
        for (int i = 0; i < flags.Length; i++)
        {
            if (flags[i] != 0)
            {
                if (_nonFiniteTensor < 0) { _nonFiniteTensor = i; _nonFiniteElement = -1; }
                return false;
            }
        }
        return true;
    }

    /// <summary>Ends a step: advances t when finite; otherwise counts the skip or throws per policy. Releases the guard.</summary>
    protected StepOutcome EndStep(bool finite)
    {
        try
        {
            if (finite) { StepCount++; return StepOutcome.Applied; }
            NonFiniteGradient? bad = _nonFiniteTensor < 0 ? null
                : new NonFiniteGradient(_nonFiniteTensor, Tensors[_nonFiniteTensor].Name, _nonFiniteElement, StepCount + 1);
            LastNonFinite = bad;
            if (NonFinitePolicy == NonFinitePolicy.Throw)
            {
                string what = bad is { } b ? "Non-finite gradient in " + b + "; nothing was changed."
                                           : $"A gradient holds NaN or ±Inf at step {StepCount + 1}; nothing was changed.";
                throw bad is { } g ? new NonFiniteGradientException(what, g) : new NonFiniteGradientException(what);
            }
            if (SkippedSteps < long.MaxValue) SkippedSteps++;   // saturates: a count that wrapped negative would not load again
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
        if (_deviceKernels is not null) DisposeKernels(_deviceKernels);
        _deviceKernels = null;
        if (DeviceFirstMoments is not null)
        {
            for (int i = 0; i < Tensors.Count; i++)
            {
                DeviceFirstMoments[i].Dispose(); DeviceSecondMoments![i].Dispose();
                DeviceSumM![i].Dispose(); DeviceSumV![i].Dispose(); DeviceFirstMomentCodes![i].Dispose();
            }
            DeviceFlag!.Dispose();
            _deviceNorm?.Dispose();
        }
        GC.SuppressFinalize(this);
    }
}
