using Collins.Kernels;
using ILGPU;
using ILGPU.Runtime;
using Collins.Hashing;

// ILGPU's CPU accelerator emits its kernel launchers into a dynamic assembly named "ILGPURuntime":
// it must see the internal constant struct and kernels below.
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("ILGPURuntime")]

namespace Collins;

/// <summary>Device (ILGPU) state and step for the run-time optimizer: generic kernels with run-time constants.</summary>
public sealed partial class CountSketchAdam
{
    /// <summary>Constants of one tensor, passed to every kernel.</summary>
    internal readonly struct DeviceTensorConstants
    {
        public DeviceTensorConstants(TensorPlan plan, OptimizerSettings settings)
        {
            Length = plan.Length; Buckets = plan.Buckets; Rows = plan.Rows;
            HasM = plan.HasFirstMoment ? 1 : 0;
            Mean = plan.SecondMoment == SecondMomentEstimate.Mean && !plan.IsDense ? 1 : 0;
            var k = KernelCoefficients.From(settings);
            Beta1 = k.Beta1; Beta2 = k.Beta2; Epsilon = k.Epsilon; C1 = k.OneMinusBeta1; C2 = k.OneMinusBeta2;
            A = plan.UniversalA; B = plan.UniversalB; SA = plan.UniversalSignA; SB = plan.UniversalSignB;
            Universal = plan.Layout == SketchLayout.Universal ? 1 : 0;
            LastRotation = !plan.IsDense && !plan.IsFactored && plan.Layout == SketchLayout.Rotation ? plan.Rotations[plan.Rows - 1] : 0;
            LastLength = plan.Length - (plan.Rows - 1) * plan.Buckets;
        }

        public readonly int Length, Buckets, Rows, HasM, Mean, Universal, LastRotation, LastLength;
        public readonly float Beta1, Beta2, Epsilon, C1, C2;
        public readonly uint A, B, SA, SB;
    }

    private sealed class DeviceTensor : IDisposable // rotations/signs (rows ints/floats) and, for Universal Mean only, the occupancy (k floats)
    {
        public DeviceTensorConstants Constants;
        public MemoryBuffer1D<int, Stride1D.Dense> Rotations = null!;
        public MemoryBuffer1D<float, Stride1D.Dense> Signs = null!;
        public MemoryBuffer1D<float, Stride1D.Dense> Occupancy = null!;

        public void Dispose() { Rotations.Dispose(); Signs.Dispose(); Occupancy.Dispose(); }
    }

    private DeviceTensor[]? _device;
    // The factored tensors' kernels (the generated optimizers' own set, bound to the plan; null for other tensors).
    private FactoredKernels?[]? _factored;
    private Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants>? _rotationAccumulate;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, DeviceTensorConstants>? _universalAccumulate;
    private Action<Index1D, ArrayView<float>, ArrayView<int>>? _checkFinite;
    private Action<Index1D, ArrayView<float>, ArrayView<int>>? _checkSquares;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants, StepScalars>? _bucketUpdate;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants, StepScalars>? _rotationApply;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants, StepScalars>? _universalApply;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants, StepScalars>? _denseApply;

    private void InitializeDevice(Accelerator accelerator)
    {
        _device = new DeviceTensor[Tensors.Count];
        for (int i = 0; i < Tensors.Count; i++)
        {
            var plan = Tensors[i];
            var t = new DeviceTensor { Constants = new DeviceTensorConstants(plan, Settings) };
            bool rotation = !plan.IsDense && !plan.IsFactored && plan.Layout == SketchLayout.Rotation;
            t.Rotations = accelerator.Allocate1D(rotation ? plan.Rotations.ToArray() : new int[1]);
            t.Signs = accelerator.Allocate1D(rotation ? plan.Signs.ToArray().Select(s => (float)s).ToArray() : new float[1]);
            float[] inv = new float[1];
            if (t.Constants.Mean == 1 && t.Constants.Universal == 1) inv = plan.Occupancy().Select(o => (float)o).ToArray();
            t.Occupancy = accelerator.Allocate1D(inv);
            _device[i] = t;
        }
        _factored = new FactoredKernels?[Tensors.Count];
        for (int i = 0; i < Tensors.Count; i++)
        {
            var plan = Tensors[i];
            if (!plan.IsFactored) continue;
            var kernels = new FactoredKernels(accelerator, KernelCoefficients.From(Settings), plan.FactorRows, plan.FactorColumns,
                                              plan.IsQuantized ? plan.FirstMoment : FirstMomentStorage.Sketch, plan.IsQuantized ? plan.QuantizationBlock : 0);
            _factored[i] = kernels;
            kernels.Bind(plan, Settings, DeviceFirstMomentCodes![i].View);
        }
        _rotationAccumulate = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants>(RotationAccumulateKernel);
        _universalAccumulate = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, DeviceTensorConstants>(UniversalAccumulateKernel);
        // The finiteness checks are the generated optimizers' (they need no constants).
        _checkFinite = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>>(SpecializedDeviceKernels.CheckSums);
        _checkSquares = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>>(SpecializedDeviceKernels.DenseCheck);
        _bucketUpdate = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants, StepScalars>(BucketUpdateKernel);
        _rotationApply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants, StepScalars>(RotationApplyKernel);
        _universalApply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants, StepScalars>(UniversalApplyKernel);
        _denseApply = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, DeviceTensorConstants, StepScalars>(DenseApplyKernel);
        accelerator.Synchronize();
    }

    /// <summary>Device step: buffers on the optimizer's accelerator, one parameter/gradient pair per tensor in declaration order.</summary>
    /// <exception cref="ArgumentException">A buffer is missing, invalid, on another accelerator, of the wrong length, or overlapping; nothing was changed.</exception>
    /// <exception cref="InvalidOperationException">The optimizer keeps its state on the CPU, or another step is running.</exception>
    public StepOutcome Step(float learningRate, IReadOnlyList<ArrayView<float>> parameters, IReadOnlyList<ArrayView<float>> gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        var buffers = new ListDeviceBuffers(parameters, gradients);
        return StepDevice(learningRate, ref buffers);
    }

    /// <inheritdoc/>
    protected override void LoadDeviceKernels() { }   // loaded with the state, in InitializeDevice

    /// <inheritdoc/>
    protected override void DeviceAccumulate(int tensor, ArrayView<float> gradient, ArrayView<int> flag)
    {
        var plan = Tensors[tensor];
        var t = _device![tensor];
        if (plan.IsDense) { _checkSquares!(plan.Length, gradient, flag); return; }
        if (_factored![tensor] is { } factored) { factored.Accumulate(plan, gradient, default, default, flag); return; }
        var sumM = DeviceSumM![tensor].View; var sumV = DeviceSumV![tensor].View;
        if (plan.Layout == SketchLayout.Rotation)
            _rotationAccumulate!(plan.Buckets, gradient, t.Rotations.View, t.Signs.View, sumM, sumV, t.Constants);
        else
        {
            DeviceSumM[tensor].MemSetToZero(); DeviceSumV[tensor].MemSetToZero();
            _universalAccumulate!(plan.Length, gradient, sumM, sumV, flag, t.Constants);
        }
        _checkFinite!(plan.Buckets, sumV, flag);
    }

    /// <inheritdoc/>
    private protected override (ArrayView<float> Values, bool Square) DeviceGradientSquaresSource(int tensor, ArrayView<float> gradient)
    {
        var plan = Tensors[tensor];
        if (plan.IsDense) return (gradient, true);
        if (_factored![tensor] is { } factored) return factored.GradientSquaresSource(plan, gradient, default);
        return (DeviceSumV![tensor].View, false);
    }

    /// <inheritdoc/>
    protected override void DeviceApply(int tensor, ArrayView<float> parameters, ArrayView<float> gradient, in StepScalars scalars)
    {
        var plan = Tensors[tensor];
        var t = _device![tensor];
        var m = DeviceFirstMoments![tensor].View; var v = DeviceSecondMoments![tensor].View;
        if (_factored![tensor] is { } factored) { factored.Apply(plan, parameters, gradient, m, v, default, default, in scalars); return; }
        if (plan.IsDense) { _denseApply!(plan.Length, parameters, gradient, m, v, t.Constants, scalars); return; }
        var sumM = DeviceSumM![tensor].View; var sumV = DeviceSumV![tensor].View;
        _bucketUpdate!(plan.Buckets, m, v, sumM, sumV, t.Occupancy.View, t.Constants, scalars);
        var factor = plan.HasFirstMoment ? sumM : sumV;
        if (plan.Layout == SketchLayout.Rotation)
            _rotationApply!(plan.Length, parameters, gradient, t.Rotations.View, t.Signs.View, factor, t.Constants, scalars);
        else
            _universalApply!(plan.Length, parameters, gradient, factor, t.Constants, scalars);
    }

    private readonly struct ListDeviceBuffers(IReadOnlyList<ArrayView<float>> p, IReadOnlyList<ArrayView<float>> g) : IDeviceStepBuffers
    {
        public int ParameterCount => p.Count;
        public int GradientCount => g.Count;
        public ArrayView<float> Parameters(int i) => p[i];
        public ArrayView<float> Gradient(int i) => g[i];
    }

    // ------------------------------------------------------------------------------ kernels

    /// <summary>One thread per bucket b: sums over rows in order, column c = (b − ρ_r) mod k.</summary>
    internal static void RotationAccumulateKernel(Index1D b, ArrayView<float> g, ArrayView<int> rho, ArrayView<float> sigma,
                                                 ArrayView<float> sumM, ArrayView<float> sumV, DeviceTensorConstants c)
    {
        float sm = 0, sv = 0;
        int k = c.Buckets;
        for (int r = 0; r < c.Rows; r++)
        {
            int col = b - rho[r];
            if (col < 0) col += k;
            int i = r * k + col;
            if (i < c.Length)
            {
                float x = g[i];
                sm += sigma[r] * x;
                sv += x * x;
            }
        }
        if (c.HasM != 0) sumM[b] = sm;
        sumV[b] = sv;
    }

    /// <summary>One thread per entry: scatter with atomics (bucket order not fixed on a device).</summary>
    internal static void UniversalAccumulateKernel(Index1D i, ArrayView<float> g, ArrayView<float> sumM, ArrayView<float> sumV, ArrayView<int> flag, DeviceTensorConstants c)
    {
        float x = g[i];
        // An entry whose square is not finite raises the flag and is not added: the atomics never see NaN (ILGPU's CPU
        // accelerator's float atomic is a compare-exchange loop that never ends on NaN), as in the generated scatter kernel.
        if (!(x * x <= float.MaxValue)) { flag[0] = 1; return; }
        int b = HashDerivation.UniversalBucket(c.A, c.B, c.Buckets, i);
        if (c.HasM != 0) Atomic.Add(ref sumM[b], HashDerivation.UniversalSign(c.SA, c.SB, i) * x);
        Atomic.Add(ref sumV[b], x * x);
    }

    /// <summary>
    /// One thread per bucket: moments, then the update factor into the workspace, with the CPU engine's operation order
    /// (<c>RotationCpu.UpdateBuckets</c>): v̂ = v / occupancy, q = lr·(m·invBc1) / (√v̂·invSqrtBc2 + ε), so that this kernel and a
    /// generated optimizer's unrolled one give the same bits. Gradient scale s: the coefficients (1 − β1)·s and (1 − β2)·(s·s), and
    /// (lr·s) / (…) when β1 = 0 (the apply kernel multiplies that by g); exact for s = 1.
    /// </summary>
    internal static void BucketUpdateKernel(Index1D b, ArrayView<float> m, ArrayView<float> v, ArrayView<float> sumM, ArrayView<float> sumV,
                                           ArrayView<float> occupancy, DeviceTensorConstants c, StepScalars s)
    {
        float gs = s.GradientScale;
        float vv = c.Beta2 * v[b] + c.C2 * (gs * gs) * sumV[b];
        v[b] = vv;
        float vhat = vv;
        if (c.Mean != 0)
        {
            if (c.Universal != 0) vhat = vv / occupancy[b];
            else
            {
                // Rotation: the last row reaches buckets [ρ_last, ρ_last + lastLength) mod k.
                int col = b - c.LastRotation;
                if (col < 0) col += c.Buckets;
                vhat = vv / (col < c.LastLength ? (float)c.Rows : (float)(c.Rows - 1));
            }
        }
        float den = MathF.Sqrt(vhat) * s.InvSqrtBiasCorrection2 + c.Epsilon;
        if (c.HasM != 0)
        {
            float mm = c.Beta1 * m[b] + c.C1 * gs * sumM[b];
            m[b] = mm;
            sumM[b] = s.LearningRate * (mm * s.InvBiasCorrection1) / den;
        }
        else sumV[b] = s.LearningRate * gs / den;
    }

    internal static void RotationApplyKernel(Index1D i, ArrayView<float> p, ArrayView<float> g, ArrayView<int> rho, ArrayView<float> sigma,
                                            ArrayView<float> factor, DeviceTensorConstants c, StepScalars s)
    {
        int k = c.Buckets;
        int r = i / k;
        int b = i - r * k + rho[r];
        if (b >= k) b -= k;
        if (c.HasM != 0) p[i] = p[i] * s.Decay - sigma[r] * factor[b];
        else p[i] = p[i] * s.Decay - g[i] * factor[b];
    }

    internal static void UniversalApplyKernel(Index1D i, ArrayView<float> p, ArrayView<float> g, ArrayView<float> factor, DeviceTensorConstants c, StepScalars s)
    {
        int b = HashDerivation.UniversalBucket(c.A, c.B, c.Buckets, i);
        if (c.HasM != 0) p[i] = p[i] * s.Decay - HashDerivation.UniversalSign(c.SA, c.SB, i) * factor[b];
        else p[i] = p[i] * s.Decay - g[i] * factor[b];
    }

    /// <summary>Exact AdamW on entry i, gradient scale s folded in as <c>SpecializedDeviceKernels.DenseApply</c> folds it.</summary>
    internal static void DenseApplyKernel(Index1D i, ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, DeviceTensorConstants c, StepScalars s)
    {
        float x = g[i];
        float gs = s.GradientScale;
        float vv = c.Beta2 * v[i] + c.C2 * (gs * gs) * x * x;
        v[i] = vv;
        float mHat = x;
        float lr = s.LearningRate * gs;
        if (c.HasM != 0) { float mm = c.Beta1 * m[i] + c.C1 * gs * x; m[i] = mm; mHat = mm * s.InvBiasCorrection1; lr = s.LearningRate; }
        p[i] = p[i] * s.Decay - lr * mHat / (MathF.Sqrt(vv) * s.InvSqrtBiasCorrection2 + c.Epsilon);
    }

    private void DisposeDevice()
    {
        if (_device is null) return;
        foreach (var t in _device) t.Dispose();
        foreach (var f in _factored ?? []) f?.Dispose();
        _factored = null;
        _device = null;
    }
}
