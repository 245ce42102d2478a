using System.ComponentModel;
using Collins.Hashing;
using ILGPU;
using ILGPU.Runtime;

namespace Collins.Kernels;

// The device kernels of source-generated optimizers, written once here. A generated optimizer supplies only what its
// declared shapes fix, as descriptor types with static abstract members: its hyperparameters (IStepConstants) and, per
// sketched tensor, its bucket count and hash constants (IUniversalTensor) or its rows (IRotationTensor, whose VisitRows the
// generator unrolls with literal offsets, rotations and signs). ILGPU compiles one kernel per (constants, tensor)
// instantiation and inlines the descriptor calls, so the PTX sees literals, exactly as if the kernel were written per tensor.
// Every kernel follows the CPU engine's operation order (CpuTensorKernel, RotationCpu, UniversalCpu, DenseAdamWCpu), so a
// generated optimizer on a device and CountSketchAdam give the same bits (tests: GeneratedDeviceTests).

/// <summary>
/// The hyperparameters a generated optimizer compiles into its device kernels: β and 1 − β as the floats every kernel uses
/// (1 − β formed in double and rounded once, <see cref="KernelCoefficients"/>), ε, and the estimator switches. Not meant for user code.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public interface IStepConstants
{
    /// <summary>β1 (unused when <see cref="HasFirstMoment"/> is false).</summary>
    static abstract float Beta1 { get; }
    /// <summary>1 − β1.</summary>
    static abstract float OneMinusBeta1 { get; }
    /// <summary>β2.</summary>
    static abstract float Beta2 { get; }
    /// <summary>1 − β2.</summary>
    static abstract float OneMinusBeta2 { get; }
    /// <summary>ε.</summary>
    static abstract float Epsilon { get; }
    /// <summary>False when β1 = 0: no first moment is kept and m̂ = g.</summary>
    static abstract bool HasFirstMoment { get; }
    /// <summary>True for <see cref="SecondMomentEstimate.Mean"/>: v̂ = v / occupancy of the bucket.</summary>
    static abstract bool MeanSecondMoment { get; }
}

/// <summary>
/// One Rotation-layout tensor: k buckets and its rows, entry r·k + c in bucket (c + ρ_r) mod k with sign σ_r. The generator
/// writes <see cref="VisitRows"/> as one call per row with literal constants. Not meant for user code.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public interface IRotationTensor
{
    /// <summary>k, the buckets per moment.</summary>
    static abstract int BucketCount { get; }

    /// <summary>
    /// Calls <paramref name="row"/> once per row r in order: <see cref="IRotationRow.Row"/> with offset r·k, ρ_r and σ_r, the
    /// last row through <see cref="IRotationRow.LastRow"/> with its length when it is shorter than k.
    /// </summary>
    static abstract void VisitRows<TRow>(ref TRow row) where TRow : struct, IRotationRow;
}

/// <summary>What a Rotation kernel does with one row of bucket b's entries (see <see cref="IRotationTensor.VisitRows"/>). Not meant for user code.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public interface IRotationRow
{
    /// <summary>A full row: its entry in bucket b is offset + (b − rotation) mod k, with sign (±1).</summary>
    void Row(int offset, int rotation, int sign);

    /// <summary>The last row when it has <paramref name="length"/> &lt; k entries: bucket b has an entry there only when its column is below the length.</summary>
    void LastRow(int offset, int rotation, int sign, int length);
}

/// <summary>One Universal-layout tensor: k buckets and its Carter–Wegman constants (<see cref="HashDerivation.UniversalBucket"/>). Not meant for user code.</summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public interface IUniversalTensor
{
    /// <summary>k, the buckets per moment.</summary>
    static abstract int BucketCount { get; }
    /// <summary>Bucket hash multiplier.</summary>
    static abstract uint A { get; }
    /// <summary>Bucket hash offset.</summary>
    static abstract uint B { get; }
    /// <summary>Sign hash multiplier.</summary>
    static abstract uint SignA { get; }
    /// <summary>Sign hash offset.</summary>
    static abstract uint SignB { get; }
}

/// <summary>
/// A tensor's loaded device kernels, created by a generated optimizer for its accelerator (<see cref="Dense{TConstants}"/>,
/// <see cref="Rotation{TConstants, TTensor}"/>, <see cref="Universal{TConstants, TTensor}"/>) and launched by
/// <see cref="SketchedOptimizerBase"/>'s device step. Not meant for user code.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public abstract class DeviceTensorKernels : IDisposable
{
    private protected DeviceTensorKernels() { }

    /// <summary>Phase 1: bucket sums into the workspace (a dense tensor checks its gradient only), raising the flag on a non-finite verdict.</summary>
    internal abstract void Accumulate(TensorPlan plan, ArrayView<float> gradient, ArrayView<float> sumM, ArrayView<float> sumV, ArrayView<int> flag);

    /// <summary>Phase 2: the moments from the workspace, then the parameters.</summary>
    internal abstract void Apply(TensorPlan plan, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> firstMoment,
                                 ArrayView<float> secondMoment, ArrayView<float> sumM, ArrayView<float> sumV, in StepScalars scalars);

    /// <summary>
    /// Called by the optimizer once per tensor the set serves, before its first step: the tensor's plan, the settings and the device
    /// codes of a quantised first moment (an empty view otherwise). Only the factored kernels keep anything.
    /// </summary>
    internal virtual void Bind(TensorPlan plan, OptimizerSettings settings, ArrayView<byte> codes) { }

    /// <summary>
    /// Gradient-norm clipping: the floats whose sum (of squares, when <c>Square</c>) is the tensor's Σ g², as phase 1 left them. A
    /// sketch's bucket sums of squares (<paramref name="sumV"/>) by default; a dense tensor's gradient, a factored tensor's row sums.
    /// </summary>
    internal virtual (ArrayView<float> Values, bool Square) GradientSquaresSource(TensorPlan plan, ArrayView<float> gradient, ArrayView<float> sumV)
        => (sumV, false);

    /// <summary>Frees what the kernels allocated themselves (the Universal Mean occupancy table); kernels need no freeing.</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>The dense (exact AdamW) kernels, shared by every dense tensor of an optimizer.</summary>
    public static DeviceTensorKernels Dense<TConstants>(Accelerator accelerator) where TConstants : struct, IStepConstants
        => new DenseKernels<TConstants>(accelerator ?? throw new ArgumentNullException(nameof(accelerator)));

    /// <summary>
    /// The kernels of factored tensor <typeparamref name="TTensor"/> (β1 = 0, or a block-quantised first moment): one set per
    /// tensor, bound to its plan and state when the optimizer loads it (the descriptor's shape is checked against the plan then).
    /// </summary>
    public static DeviceTensorKernels Factored<TConstants, TTensor>(Accelerator accelerator)
        where TConstants : struct, IStepConstants where TTensor : struct, IFactoredTensor
        => new FactoredKernels(accelerator ?? throw new ArgumentNullException(nameof(accelerator)),
                               new KernelCoefficients(TConstants.Beta1, TConstants.OneMinusBeta1, TConstants.Beta2, TConstants.OneMinusBeta2, TConstants.Epsilon),
                               TTensor.Rows, TTensor.Columns, TTensor.FirstMoment, TTensor.QuantizationBlock);

    /// <summary>The Rotation kernels of tensor <typeparamref name="TTensor"/>, its rows unrolled.</summary>
    public static DeviceTensorKernels Rotation<TConstants, TTensor>(Accelerator accelerator)
        where TConstants : struct, IStepConstants where TTensor : struct, IRotationTensor
        => new RotationKernels<TConstants, TTensor>(accelerator ?? throw new ArgumentNullException(nameof(accelerator)));

    /// <summary>The Universal kernels of tensor <typeparamref name="TTensor"/>, its hash constants literal.</summary>
    public static DeviceTensorKernels Universal<TConstants, TTensor>(Accelerator accelerator)
        where TConstants : struct, IStepConstants where TTensor : struct, IUniversalTensor
        => new UniversalKernels<TConstants, TTensor>(accelerator ?? throw new ArgumentNullException(nameof(accelerator)));
}

internal sealed class DenseKernels<TC> : DeviceTensorKernels where TC : struct, IStepConstants
{
    private readonly Action<Index1D, ArrayView<float>, ArrayView<int>> _check;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepScalars> _apply;

    public DenseKernels(Accelerator accelerator)
    {
        _check = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>>(SpecializedDeviceKernels.DenseCheck);
        _apply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepScalars>(
            SpecializedDeviceKernels.DenseApply<TC>);
    }

    internal override void Accumulate(TensorPlan plan, ArrayView<float> gradient, ArrayView<float> sumM, ArrayView<float> sumV, ArrayView<int> flag)
        => _check(plan.Length, gradient, flag);

    internal override (ArrayView<float> Values, bool Square) GradientSquaresSource(TensorPlan plan, ArrayView<float> gradient, ArrayView<float> sumV)
        => (gradient, true);

    internal override void Apply(TensorPlan plan, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> firstMoment,
                                 ArrayView<float> secondMoment, ArrayView<float> sumM, ArrayView<float> sumV, in StepScalars scalars)
        => _apply(plan.Length, parameters, gradient, firstMoment, secondMoment, scalars);
}

internal sealed class RotationKernels<TC, TT> : DeviceTensorKernels where TC : struct, IStepConstants where TT : struct, IRotationTensor
{
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>> _accumulate;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepScalars> _apply;

    public RotationKernels(Accelerator accelerator)
    {
        _accumulate = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>>(
            SpecializedDeviceKernels.RotationAccumulate<TC, TT>);
        _apply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepScalars>(
            SpecializedDeviceKernels.RotationApply<TC, TT>);
    }

    internal override void Accumulate(TensorPlan plan, ArrayView<float> gradient, ArrayView<float> sumM, ArrayView<float> sumV, ArrayView<int> flag)
        => _accumulate(TT.BucketCount, gradient, sumM, sumV, flag);

    internal override void Apply(TensorPlan plan, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> firstMoment,
                                 ArrayView<float> secondMoment, ArrayView<float> sumM, ArrayView<float> sumV, in StepScalars scalars)
        => _apply(TT.BucketCount, parameters, gradient, firstMoment, secondMoment, sumM, sumV, scalars);
}

internal sealed class UniversalKernels<TC, TT> : DeviceTensorKernels where TC : struct, IStepConstants where TT : struct, IUniversalTensor
{
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>> _scatter;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<int>> _check;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepScalars> _buckets;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepScalars> _elements;
    private MemoryBuffer1D<float, Stride1D.Dense>? _occupancy;   // Mean only: entries per bucket, derived from the hash (not state)

    public UniversalKernels(Accelerator accelerator)
    {
        _scatter = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>>(
            SpecializedDeviceKernels.UniversalScatter<TC, TT>);
        _check = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>>(SpecializedDeviceKernels.CheckSums);
        _buckets = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepScalars>(
            SpecializedDeviceKernels.UniversalBuckets<TC>);
        _elements = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, StepScalars>(
            SpecializedDeviceKernels.UniversalElements<TC, TT>);
        _accelerator = accelerator;
    }

    private readonly Accelerator _accelerator;

    internal override void Accumulate(TensorPlan plan, ArrayView<float> gradient, ArrayView<float> sumM, ArrayView<float> sumV, ArrayView<int> flag)
    {
        if (TC.HasFirstMoment) sumM.MemSetToZero();
        sumV.MemSetToZero();
        _scatter(plan.Length, gradient, sumM, sumV, flag);
        _check(TT.BucketCount, sumV, flag);
    }

    internal override void Apply(TensorPlan plan, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> firstMoment,
                                 ArrayView<float> secondMoment, ArrayView<float> sumM, ArrayView<float> sumV, in StepScalars scalars)
    {
        // The occupancy view is read only for Mean; Sum passes the workspace in its place (never read).
        var occupancy = TC.MeanSecondMoment ? (_occupancy ??= Occupancy(plan)).View.AsContiguous() : sumV;
        _buckets(TT.BucketCount, firstMoment, secondMoment, sumM, sumV, occupancy, scalars);
        _elements(plan.Length, parameters, gradient, sumM, sumV, scalars);
    }

    private MemoryBuffer1D<float, Stride1D.Dense> Occupancy(TensorPlan plan)
    {
        var counts = new float[TT.BucketCount];
        for (int i = 0; i < plan.Length; i++) counts[HashDerivation.UniversalBucket(TT.A, TT.B, TT.BucketCount, i)] += 1f;
        return _accelerator.Allocate1D(counts);
    }

    public override void Dispose()
    {
        _occupancy?.Dispose();
        _occupancy = null;
        base.Dispose();
    }
}

/// <summary>The kernels themselves: small static methods, one thread per bucket or entry, descriptors inlined by ILGPU.</summary>
internal static class SpecializedDeviceKernels
{
    /// <summary>
    /// Every kernel a generated optimizer type loads, as CreateDeviceKernels instantiates them: the dense pair with its
    /// constants, and each sketched tensor's kernels with its descriptor ("(dense)" names the dense pair). For PTX checks
    /// (GeneratedPtxTests, the bench's --dump-ptx), which compile them without a GPU.
    /// </summary>
    internal static IEnumerable<(string Tensor, System.Reflection.MethodInfo Kernel)> KernelsOf(Type optimizer)
    {
        const System.Reflection.BindingFlags Any = System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic;
        static System.Reflection.MethodInfo Kernel(string name) => typeof(SpecializedDeviceKernels).GetMethod(name, Any)!;
        var constants = optimizer.GetNestedType("__Constants", System.Reflection.BindingFlags.NonPublic)
                        ?? throw new ArgumentException($"{optimizer.Name} is not a generated optimizer (no __Constants descriptor).", nameof(optimizer));
        yield return ("(dense)", Kernel(nameof(DenseCheck)));
        yield return ("(dense)", Kernel(nameof(DenseApply)).MakeGenericMethod(constants));
        yield return ("(norm)", typeof(GradientNormDeviceKernels).GetMethod(nameof(GradientNormDeviceKernels.SumFloats), Any)!);
        yield return ("(norm)", typeof(GradientNormDeviceKernels).GetMethod(nameof(GradientNormDeviceKernels.SumDoubles), Any)!);
        foreach (var tensor in optimizer.GetNestedTypes(System.Reflection.BindingFlags.Public))
        {
            if (typeof(IRotationTensor).IsAssignableFrom(tensor))
            {
                yield return (tensor.Name, Kernel(nameof(RotationAccumulate)).MakeGenericMethod(constants, tensor));
                yield return (tensor.Name, Kernel(nameof(RotationApply)).MakeGenericMethod(constants, tensor));
            }
            else if (typeof(IUniversalTensor).IsAssignableFrom(tensor))
            {
                yield return (tensor.Name, Kernel(nameof(UniversalScatter)).MakeGenericMethod(constants, tensor));
                yield return (tensor.Name, Kernel(nameof(CheckSums)));
                yield return (tensor.Name, Kernel(nameof(UniversalBuckets)).MakeGenericMethod(constants));
                yield return (tensor.Name, Kernel(nameof(UniversalElements)).MakeGenericMethod(constants, tensor));
            }
            else if (typeof(IFactoredTensor).IsAssignableFrom(tensor))
            {
                foreach (string name in FactoredDeviceKernels.Names)
                    yield return (tensor.Name, typeof(FactoredDeviceKernels).GetMethod(name, Any)!);
            }
        }
    }

    /// <summary>Dense phase 1: raises the flag when g² is not a finite float (the sketched rule for one-entry buckets; plain store, no atomics).</summary>
    internal static void DenseCheck(Index1D index, ArrayView<float> gradient, ArrayView<int> flag)
    {
        float x = gradient[index];
        if (!(x * x <= float.MaxValue)) flag[0] = 1;
    }

    /// <summary>
    /// Dense phase 2: exact AdamW on element i, the CPU kernel's formula and order, gradient scale s folded in as the CPU folds it
    /// (coefficients (1 − β1)·s and (1 − β2)·(s·s); lr·s when β1 = 0; multiplying by s = 1 is exact).
    /// </summary>
    internal static void DenseApply<TC>(Index1D index, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> firstMoment,
                                       ArrayView<float> secondMoment, StepScalars scalars) where TC : struct, IStepConstants
    {
        int i = index;
        float g = gradient[i];
        float gs = scalars.GradientScale;
        float v = TC.Beta2 * secondMoment[i] + TC.OneMinusBeta2 * (gs * gs) * g * g;
        secondMoment[i] = v;
        float mhat = g;
        float lr = scalars.LearningRate * gs;
        if (TC.HasFirstMoment)
        {
            float m = TC.Beta1 * firstMoment[i] + TC.OneMinusBeta1 * gs * g;
            firstMoment[i] = m;
            mhat = m * scalars.InvBiasCorrection1;
            lr = scalars.LearningRate;
        }
        parameters[i] = parameters[i] * scalars.Decay - lr * mhat / (MathF.Sqrt(v) * scalars.InvSqrtBiasCorrection2 + TC.Epsilon);
    }

    /// <summary>
    /// Rotation phase 1, one thread per bucket b: SumM[b] = Σ_r σ_r·g[r·k + (b − ρ_r) mod k] and SumV[b] = Σ_r g², rows in order;
    /// raises the flag (plain store, no atomics) when SumV[b] is not finite.
    /// </summary>
    internal static void RotationAccumulate<TC, TT>(Index1D bucket, ArrayView<float> gradient, ArrayView<float> sumM, ArrayView<float> sumV, ArrayView<int> flag)
        where TC : struct, IStepConstants where TT : struct, IRotationTensor
    {
        var rows = new AccumulateRows<TC, TT>(bucket, gradient);
        TT.VisitRows(ref rows);
        if (TC.HasFirstMoment) sumM[bucket] = rows.M;
        sumV[bucket] = rows.V;
        if (!(rows.V <= float.MaxValue)) flag[0] = 1;
    }

    /// <summary>
    /// Rotation phase 2, one thread per bucket b: the bucket's moments from SumM/SumV, its update q = lr·(m·ib1)/(√v̂·isb2 + ε)
    /// (lr/(√v̂·isb2 + ε) when β1 = 0), then each row's parameter. No two threads touch the same parameter: no atomics.
    /// </summary>
    internal static void RotationApply<TC, TT>(Index1D bucket, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> firstMoment,
                                              ArrayView<float> secondMoment, ArrayView<float> sumM, ArrayView<float> sumV, StepScalars scalars)
        where TC : struct, IStepConstants where TT : struct, IRotationTensor
    {
        int b = bucket;
        float vhat = Moments<TC>(b, firstMoment, secondMoment, sumM, sumV, scalars.GradientScale, out float m);
        if (TC.MeanSecondMoment)
        {
            var count = new CountRows<TT>(b);
            TT.VisitRows(ref count);
            vhat /= count.Rows;
        }
        var rows = new ApplyRows<TC, TT>(b, parameters, gradient, Update<TC>(m, vhat, scalars), scalars.Decay);
        TT.VisitRows(ref rows);
    }

    /// <summary>Universal phase 1a, one thread per entry: atomic scatter of h2(i)·g[i] and g[i]²; an entry whose g² is not finite raises the flag and is not added (the atomics never see NaN).</summary>
    internal static void UniversalScatter<TC, TT>(Index1D index, ArrayView<float> gradient, ArrayView<float> sumM, ArrayView<float> sumV, ArrayView<int> flag)
        where TC : struct, IStepConstants where TT : struct, IUniversalTensor
    {
        int i = index;
        float x = gradient[i];
        if (!(x * x <= float.MaxValue)) { flag[0] = 1; return; }
        int b = HashDerivation.UniversalBucket(TT.A, TT.B, TT.BucketCount, i);
        if (TC.HasFirstMoment) Atomic.Add(ref sumM[b], HashDerivation.UniversalSign(TT.SignA, TT.SignB, i) * x);
        Atomic.Add(ref sumV[b], x * x);
    }

    /// <summary>
    /// Phase 1b of a Universal tensor (and of every sketched tensor of the run-time optimizer), one thread per bucket: raises the
    /// flag when SumV[b], a sum of squares, is not finite (NaN or +∞).
    /// </summary>
    internal static void CheckSums(Index1D bucket, ArrayView<float> sumV, ArrayView<int> flag)
    {
        if (!(sumV[bucket] <= float.MaxValue)) flag[0] = 1;
    }

    /// <summary>Universal phase 2a, one thread per bucket: the moments once, and the bucket's coefficient into the workspace (SumM, or SumV when β1 = 0).</summary>
    internal static void UniversalBuckets<TC>(Index1D bucket, ArrayView<float> firstMoment, ArrayView<float> secondMoment, ArrayView<float> sumM,
                                             ArrayView<float> sumV, ArrayView<float> occupancy, StepScalars scalars) where TC : struct, IStepConstants
    {
        int b = bucket;
        float vhat = Moments<TC>(b, firstMoment, secondMoment, sumM, sumV, scalars.GradientScale, out float m);
        if (TC.MeanSecondMoment) vhat /= occupancy[b];
        float q = Update<TC>(m, vhat, scalars);
        if (TC.HasFirstMoment) sumM[b] = q;
        else sumV[b] = q;
    }

    /// <summary>Universal phase 2b, one thread per entry: gathers its bucket's coefficient and updates the parameter.</summary>
    internal static void UniversalElements<TC, TT>(Index1D index, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> sumM,
                                                  ArrayView<float> sumV, StepScalars scalars) where TC : struct, IStepConstants where TT : struct, IUniversalTensor
    {
        int i = index;
        int b = HashDerivation.UniversalBucket(TT.A, TT.B, TT.BucketCount, i);
        if (TC.HasFirstMoment) parameters[i] = parameters[i] * scalars.Decay - HashDerivation.UniversalSign(TT.SignA, TT.SignB, i) * sumM[b];
        else parameters[i] = parameters[i] * scalars.Decay - gradient[i] * sumV[b];
    }

    /// <summary>
    /// The bucket's moment update (m first, then v, as the CPU engine) with the coefficients (1 − β1)·s and (1 − β2)·(s·s) of gradient
    /// scale <paramref name="gradientScale"/> (exact for s = 1); returns v (v̂ for Sum), m through <paramref name="m"/> (0 when β1 = 0).
    /// </summary>
    private static float Moments<TC>(int b, ArrayView<float> firstMoment, ArrayView<float> secondMoment, ArrayView<float> sumM, ArrayView<float> sumV,
                                     float gradientScale, out float m)
        where TC : struct, IStepConstants
    {
        m = 0f;
        if (TC.HasFirstMoment)
        {
            m = TC.Beta1 * firstMoment[b] + TC.OneMinusBeta1 * gradientScale * sumM[b];
            firstMoment[b] = m;
        }
        float v = TC.Beta2 * secondMoment[b] + TC.OneMinusBeta2 * (gradientScale * gradientScale) * sumV[b];
        secondMoment[b] = v;
        return v;
    }

    /// <summary>
    /// q = lr·(m·ib1)/(√v̂·isb2 + ε), or (lr·s)/(√v̂·isb2 + ε) when β1 = 0 (the parameter update then multiplies by g, so it moves by
    /// lr·s·g: gradient scale s enters where g is read, as in the CPU engine; exact for s = 1).
    /// </summary>
    private static float Update<TC>(float m, float vhat, in StepScalars scalars) where TC : struct, IStepConstants
        => TC.HasFirstMoment
            ? scalars.LearningRate * (m * scalars.InvBiasCorrection1) / (MathF.Sqrt(vhat) * scalars.InvSqrtBiasCorrection2 + TC.Epsilon)
            : scalars.LearningRate * scalars.GradientScale / (MathF.Sqrt(vhat) * scalars.InvSqrtBiasCorrection2 + TC.Epsilon);

    /// <summary>c = (b − ρ) mod k for 0 ≤ b, ρ &lt; k.</summary>
    private static int Column(int b, int rotation, int k) => b < rotation ? b + (k - rotation) : b - rotation;

    private struct AccumulateRows<TC, TT>(int bucket, ArrayView<float> gradient) : IRotationRow
        where TC : struct, IStepConstants where TT : struct, IRotationTensor
    {
        public float M, V;

        public void Row(int offset, int rotation, int sign) => Add(gradient[offset + Column(bucket, rotation, TT.BucketCount)], sign);

        public void LastRow(int offset, int rotation, int sign, int length)
        {
            int c = Column(bucket, rotation, TT.BucketCount);
            if (c < length) Add(gradient[offset + c], sign);
        }

        private void Add(float x, int sign)
        {
            if (TC.HasFirstMoment)
            {
                if (sign > 0) M += x;
                else M -= x;
            }
            V += x * x;
        }
    }

    private struct ApplyRows<TC, TT>(int bucket, ArrayView<float> parameters, ArrayView<float> gradient, float q, float decay) : IRotationRow
        where TC : struct, IStepConstants where TT : struct, IRotationTensor
    {
        public readonly void Row(int offset, int rotation, int sign) => Update(offset + Column(bucket, rotation, TT.BucketCount), sign);

        public readonly void LastRow(int offset, int rotation, int sign, int length)
        {
            int c = Column(bucket, rotation, TT.BucketCount);
            if (c < length) Update(offset + c, sign);
        }

        private readonly void Update(int i, int sign)
        {
            if (!TC.HasFirstMoment) parameters[i] = parameters[i] * decay - gradient[i] * q;
            else if (sign > 0) parameters[i] = parameters[i] * decay - q;
            else parameters[i] = parameters[i] * decay + q;
        }
    }

    /// <summary>Counts bucket b's entries (its occupancy, for the Mean estimate): every full row, and the last row when b's column is inside it.</summary>
    private struct CountRows<TT>(int bucket) : IRotationRow where TT : struct, IRotationTensor
    {
        public float Rows;

        public void Row(int offset, int rotation, int sign) => Rows += 1f;

        public void LastRow(int offset, int rotation, int sign, int length)
        {
            if (Column(bucket, rotation, TT.BucketCount) < length) Rows += 1f;
        }
    }
}
