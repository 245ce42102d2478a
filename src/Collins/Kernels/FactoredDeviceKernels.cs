using System.ComponentModel;
using ILGPU;
using ILGPU.Runtime;

namespace Collins.Kernels;

/// <summary>
/// One tensor with the factored second moment (<see cref="SecondMomentEstimate.Factored"/>): its R × C view and, when its first
/// moment is block-quantised, the blocks. The generator writes one per factored tensor; the runtime checks it against the
/// tensor's plan when the kernels are bound. Not meant for user code.
/// </summary>
[EditorBrowsable(EditorBrowsableState.Never)]
public interface IFactoredTensor
{
    /// <summary>R: the product of all but the last dimension.</summary>
    static abstract int Rows { get; }
    /// <summary>C: the last dimension.</summary>
    static abstract int Columns { get; }
    /// <summary>The first moment's storage (<see cref="FirstMomentStorage.Sketch"/> when β1 = 0).</summary>
    static abstract FirstMomentStorage FirstMoment { get; }
    /// <summary>B, entries per block of a quantised first moment (0 when not quantised).</summary>
    static abstract int QuantizationBlock { get; }
}

/// <summary>
/// The shape and constants of one factored tensor as its device kernels take them (one struct argument): R, C, d, the block
/// layout of a quantised first moment, and ε.
/// </summary>
internal readonly struct FactoredShape
{
    public FactoredShape(TensorPlan plan, float epsilon)
    {
        Rows = plan.FactorRows;
        Columns = plan.FactorColumns;
        Length = plan.Length;
        Block = plan.IsQuantized ? plan.QuantizationBlock : 0;
        Blocks = plan.IsQuantized ? plan.QuantizedBlocks : 0;
        Levels = plan.IsQuantized ? plan.QuantizationLevels : 0;
        FourBit = plan.FirstMoment == FirstMomentStorage.Quantized4 ? 1 : 0;
        Epsilon = epsilon;
    }

    public readonly int Rows, Columns, Length, Block, Blocks, Levels, FourBit;
    public readonly float Epsilon;
}

/// <summary>
/// Phase 2's per-step scalars of a factored tensor, formed on the host as the CPU kernel forms them
/// (<see cref="FactoredCpuKernel"/>): the β2 of this step (β̂2 = 1 − t^−c under the schedule) and its isb2, the learning rate and
/// decay, and for a quantised first moment β1, (1 − β1)·s, 1/bc1 and the step's two words of stochastic-rounding bits. Gradient
/// scale s (<see cref="StepScalars.GradientScale"/>) is folded in as the CPU kernel folds it: (1 − β2)·(s·s), lr·s (β1 = 0) or
/// (1 − β1)·s (quantised m), and <see cref="ClipSquaresScale"/> s (β1 = 0: Σ u² of update clipping is of s·g) or 1 (quantised: u
/// comes from m, which holds s already); every factor is 1 without gradient-norm clipping, and multiplying by 1 is exact.
/// </summary>
internal readonly struct FactoredStep
{
    public FactoredStep(float beta2, float oneMinusBeta2, float invSqrtBias2, float learningRate, float decay,
                        float beta1, float oneMinusBeta1, float invBias1, int stochastic, uint randomA, uint randomC, float clip, float clipSquaresScale)
    {
        Beta2 = beta2; OneMinusBeta2 = oneMinusBeta2; InvSqrtBias2 = invSqrtBias2; LearningRate = learningRate; Decay = decay;
        Beta1 = beta1; OneMinusBeta1 = oneMinusBeta1; InvBias1 = invBias1; Stochastic = stochastic; RandomA = randomA; RandomC = randomC;
        Clip = clip;
        ClipSquaresScale = clipSquaresScale;
    }

    public readonly float Beta2, OneMinusBeta2, InvSqrtBias2, LearningRate, Decay, Beta1, OneMinusBeta1, InvBias1, Clip;
    /// <summary>σ: update clipping's Σ u² is multiplied by σ² (in double) before RMS(u) is formed.</summary>
    public readonly float ClipSquaresScale;
    public readonly int Stochastic;
    public readonly uint RandomA, RandomC;
}

/// <summary>
/// The device kernels of a factored tensor (β1 = 0, or a block-quantised first moment), shared by generated optimizers
/// (<see cref="DeviceTensorKernels.Factored{TConstants, TTensor}"/>) and <see cref="CountSketchAdam"/>: the same kernels, so the
/// two are bit-identical on a device. Workspace (not state): R row and C column sums of g², two floats (1 / mean(R) and the
/// update-clipping scale) and, with update clipping, one double per row (or per block) of Σ u².
/// </summary>
internal sealed class FactoredKernels : DeviceTensorKernels
{
    private readonly Accelerator _accelerator;
    private readonly float _beta1, _oneMinusBeta1, _beta2, _oneMinusBeta2, _epsilon;
    private readonly int _rows, _columns;            // from the descriptor (generated) or the plan (run-time); checked at Bind
    private readonly FirstMomentStorage _storage;
    private readonly int _block;

    private TensorPlan? _plan;
    private FactoredShape _shape;
    private ArrayView<byte> _codes;
    private double _schedule;
    private float _clip;
    private bool _stochastic;
    private ulong _streamKey;
    private MemoryBuffer1D<float, Stride1D.Dense>? _rowSums, _columnSums, _scratch;
    private MemoryBuffer1D<double, Stride1D.Dense>? _partials;

    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, FactoredShape> _rowSumsKernel, _columnSumsKernel;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, FactoredShape, FactoredStep> _emas;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, FactoredShape> _mean;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, FactoredShape, FactoredStep> _rowSquares;
    private readonly Action<Index1D, ArrayView<double>, ArrayView<float>, FactoredShape, FactoredStep> _clipScale;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, FactoredShape, FactoredStep> _update;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<byte>, ArrayView<double>, FactoredShape, FactoredStep> _blockKernel;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<byte>, ArrayView<double>, FactoredShape, FactoredStep> _blockSquares;

    public FactoredKernels(Accelerator accelerator, KernelCoefficients k, int rows, int columns, FirstMomentStorage storage, int block)
    {
        _accelerator = accelerator;
        (_beta1, _oneMinusBeta1, _beta2, _oneMinusBeta2, _epsilon) = (k.Beta1, k.OneMinusBeta1, k.Beta2, k.OneMinusBeta2, k.Epsilon);
        (_rows, _columns, _storage, _block) = (rows, columns, storage, block);
        _rowSumsKernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, FactoredShape>(FactoredDeviceKernels.RowSums);
        _columnSumsKernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<int>, FactoredShape>(FactoredDeviceKernels.ColumnSums);
        _emas = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, FactoredShape, FactoredStep>(FactoredDeviceKernels.Emas);
        _mean = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, FactoredShape>(FactoredDeviceKernels.RowScale);
        _rowSquares = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<double>, FactoredShape, FactoredStep>(
            FactoredDeviceKernels.RowSquares);
        _clipScale = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<double>, ArrayView<float>, FactoredShape, FactoredStep>(FactoredDeviceKernels.ClipScale);
        _update = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, FactoredShape, FactoredStep>(
            FactoredDeviceKernels.Update);
        _blockKernel = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<byte>, ArrayView<double>, FactoredShape, FactoredStep>(
            FactoredDeviceKernels.QuantizedBlock);
        _blockSquares = accelerator.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<byte>, ArrayView<double>, FactoredShape, FactoredStep>(
            FactoredDeviceKernels.QuantizedBlockSquares);
    }

    internal override void Bind(TensorPlan plan, OptimizerSettings settings, ArrayView<byte> codes)
    {
        if (_plan is not null)
        {
            if (!ReferenceEquals(_plan, plan)) throw new InvalidOperationException($"Tensor '{plan.Name}': a factored kernel set serves one tensor; it is bound to '{_plan.Name}'.");
            return;
        }
        var storage = plan.IsQuantized ? plan.FirstMoment : FirstMomentStorage.Sketch;
        if (!plan.IsFactored || plan.FactorRows != _rows || plan.FactorColumns != _columns || storage != _storage
            || (plan.IsQuantized ? plan.QuantizationBlock : 0) != _block)
            throw new InvalidOperationException($"Tensor '{plan.Name}': the run-time plan disagrees with the generated constants; rebuild with matching Collins and Collins.Generators versions.");
        _plan = plan;
        _shape = new FactoredShape(plan, _epsilon);
        _codes = codes;
        _schedule = settings.Beta2Schedule;
        _clip = (float)settings.UpdateClipping;
        _stochastic = settings.StochasticRounding;
        _streamKey = plan.IsQuantized ? BlockQuantizer.StreamKey(settings.Seed, plan.Name) : 0;
        _rowSums = _accelerator.Allocate1D<float>(_rows);
        _columnSums = _accelerator.Allocate1D<float>(_columns);
        _scratch = _accelerator.Allocate1D<float>(2);
        _partials = _accelerator.Allocate1D<double>(_clip > 0 ? (plan.IsQuantized ? plan.QuantizedBlocks : _rows) : 1);
    }

    internal override void Accumulate(TensorPlan plan, ArrayView<float> gradient, ArrayView<float> sumM, ArrayView<float> sumV, ArrayView<int> flag)
    {
        Bound(plan);
        _rowSumsKernel(_rows, gradient, _rowSums!.View, flag, _shape);
        _columnSumsKernel(_columns, gradient, _columnSums!.View, flag, _shape);
    }

    /// <summary>Gradient-norm clipping: Σ g² from the R row sums phase 1 formed (as the CPU kernel forms it).</summary>
    internal override (ArrayView<float> Values, bool Square) GradientSquaresSource(TensorPlan plan, ArrayView<float> gradient, ArrayView<float> sumV)
    {
        Bound(plan);
        return (_rowSums!.View, false);
    }

    internal override void Apply(TensorPlan plan, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> firstMoment,
                                 ArrayView<float> secondMoment, ArrayView<float> sumM, ArrayView<float> sumV, in StepScalars scalars)
    {
        Bound(plan);
        // The per-step scalars, formed as FactoredCpuKernel.Apply and QuantizedApply form them.
        float beta2 = _beta2, oneMinusBeta2 = _oneMinusBeta2, isb2 = scalars.InvSqrtBiasCorrection2;
        if (_schedule > 0)
        {
            double oneMinus = Math.Pow(scalars.Step, -_schedule);
            beta2 = (float)(1.0 - oneMinus);
            oneMinusBeta2 = (float)oneMinus;
            isb2 = 1f;
        }
        oneMinusBeta2 *= scalars.GradientScale * scalars.GradientScale;
        bool quantized = plan.IsQuantized;
        uint a = 0, c = 0;
        if (quantized && _stochastic) BlockQuantizer.StepWords(_streamKey, scalars.Step, out a, out c);
        var step = new FactoredStep(beta2, oneMinusBeta2, isb2,
                                    quantized ? scalars.LearningRate : scalars.LearningRate * scalars.GradientScale, scalars.Decay,
                                    _beta1, _oneMinusBeta1 * scalars.GradientScale, scalars.InvBiasCorrection1, _stochastic ? 1 : 0, a, c, _clip,
                                    quantized ? 1f : scalars.GradientScale);
        var v = secondMoment;
        var scratch = _scratch!.View;
        _emas(_rows + _columns, v, _rowSums!.View, _columnSums!.View, _shape, step);
        _mean(1, v, scratch, _shape);
        if (quantized)
        {
            if (_clip > 0)
            {
                _blockSquares(_shape.Blocks, parameters, gradient, v, scratch, firstMoment, _codes, _partials!.View, _shape, step);
                _clipScale(_shape.Blocks, _partials.View, scratch, _shape, step);
            }
            _blockKernel(_shape.Blocks, parameters, gradient, v, scratch, firstMoment, _codes, _partials!.View, _shape, step);
            return;
        }
        if (_clip > 0)
        {
            _rowSquares(_rows, gradient, v, scratch, _partials!.View, _shape, step);
            _clipScale(_rows, _partials.View, scratch, _shape, step);
        }
        _update(plan.Length, parameters, gradient, v, scratch, _shape, step);
    }

    private void Bound(TensorPlan plan)
    {
        if (_plan is null || !ReferenceEquals(_plan, plan)) throw new InvalidOperationException($"Tensor '{plan.Name}': the factored kernels were not bound to this tensor.");
    }

    public override void Dispose()
    {
        _rowSums?.Dispose(); _columnSums?.Dispose(); _scratch?.Dispose(); _partials?.Dispose();
        _rowSums = _columnSums = _scratch = null;
        _partials = null;
        base.Dispose();
    }
}

/// <summary>
/// The factored kernels: one thread per row, column, entry or block, the CPU kernel's formulas and operation order where it matters
/// (<see cref="FactoredCpuKernel"/>); sums that the CPU forms in tiles or vector lanes are formed here in plain index order, so
/// the two agree to float rounding, not to the bit. No atomics and no local memory (a quantised block is read twice instead
/// of being held in a per-thread array).
/// </summary>
internal static class FactoredDeviceKernels
{
    /// <summary>Every kernel of a factored tensor, for the PTX checks (<see cref="SpecializedDeviceKernels.KernelsOf"/>).</summary>
    internal static readonly string[] Names =
        [nameof(RowSums), nameof(ColumnSums), nameof(Emas), nameof(RowScale), nameof(RowSquares), nameof(ClipScale), nameof(Update),
         nameof(QuantizedBlock), nameof(QuantizedBlockSquares)];

    /// <summary>Phase 1, one thread per row r: Σ_c g[r, c]² in column order; raises the flag (plain store) when it is not finite.</summary>
    internal static void RowSums(Index1D row, ArrayView<float> gradient, ArrayView<float> rowSums, ArrayView<int> flag, FactoredShape f)
    {
        int r = row, start = r * f.Columns;
        float sum = 0f;
        for (int c = 0; c < f.Columns; c++)
        {
            float x = gradient[start + c];
            sum += x * x;
        }
        rowSums[r] = sum;
        if (!(sum <= float.MaxValue)) flag[0] = 1;
    }

    /// <summary>Phase 1, one thread per column c, reading down the column (neighbouring threads read neighbouring entries): Σ_r g[r, c]².</summary>
    internal static void ColumnSums(Index1D column, ArrayView<float> gradient, ArrayView<float> columnSums, ArrayView<int> flag, FactoredShape f)
    {
        int c = column;
        float sum = 0f;
        for (int r = 0; r < f.Rows; r++)
        {
            float x = gradient[r * f.Columns + c];
            sum += x * x;
        }
        columnSums[c] = sum;
        if (!(sum <= float.MaxValue)) flag[0] = 1;
    }

    /// <summary>Phase 2a, one thread per EMA (R rows then C columns, as in v): v ← β2·v + (1 − β2)·(sum / C) for a row, (sum / R) for a column.</summary>
    internal static void Emas(Index1D index, ArrayView<float> v, ArrayView<float> rowSums, ArrayView<float> columnSums, FactoredShape f, FactoredStep s)
    {
        int i = index;
        if (i < f.Rows) v[i] = s.Beta2 * v[i] + s.OneMinusBeta2 * (rowSums[i] * (1f / f.Columns));
        else v[i] = s.Beta2 * v[i] + s.OneMinusBeta2 * (columnSums[i - f.Rows] * (1f / f.Rows));
    }

    /// <summary>Phase 2b, a single thread: mean(R) summed in double in row order; scratch[0] = 1 / mean(R) (0 when mean(R) is 0), scratch[1] = 1 (no clipping yet).</summary>
    internal static void RowScale(Index1D index, ArrayView<float> v, ArrayView<float> scratch, FactoredShape f)
    {
        double total = 0;
        for (int r = 0; r < f.Rows; r++) total += v[r];
        double mean = total / f.Rows;
        scratch[0] = mean > 0 ? (float)Math.Min(1.0 / mean, float.MaxValue) : 0f;   // clamped as the CPU kernel does (no 0·∞ = NaN)
        scratch[1] = 1f;
    }

    /// <summary>Update clipping, one thread per row: Σ_c u² in double, u = g / (√v̂·isb2 + ε), into partials[r].</summary>
    internal static void RowSquares(Index1D row, ArrayView<float> gradient, ArrayView<float> v, ArrayView<float> scratch, ArrayView<double> partials,
                                    FactoredShape f, FactoredStep s)
    {
        int r = row, start = r * f.Columns;
        float a = v[r] * scratch[0];
        double sum = 0;
        for (int c = 0; c < f.Columns; c++)
        {
            float u = gradient[start + c] / (MathF.Sqrt(a * v[f.Rows + c]) * s.InvSqrtBias2 + f.Epsilon);
            sum += u * u;
        }
        partials[r] = sum;
    }

    /// <summary>
    /// Update clipping, a single thread: Σ of the partials in order, times σ² (<see cref="FactoredStep.ClipSquaresScale"/>: u of s·g),
    /// RMS(u) = √(Σ / d), scratch[1] = d_clip / RMS when RMS exceeds d_clip.
    /// </summary>
    internal static void ClipScale(Index1D index, ArrayView<double> partials, ArrayView<float> scratch, FactoredShape f, FactoredStep s)
    {
        double squares = 0;
        int n = (int)partials.Length;
        for (int i = 0; i < n; i++) squares += partials[i];
        squares *= (double)s.ClipSquaresScale * s.ClipSquaresScale;
        double rms = Math.Sqrt(squares / f.Length);
        scratch[1] = rms > s.Clip ? (float)(s.Clip / rms) : 1f;
    }

    /// <summary>Phase 2c (β1 = 0), one thread per entry: p ← p·decay − lr·g / (√(R[r]/mean(R)·C[c])·isb2 + ε).</summary>
    internal static void Update(Index1D index, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> v, ArrayView<float> scratch,
                                FactoredShape f, FactoredStep s)
    {
        int i = index, r = i / f.Columns, c = i - r * f.Columns;
        float a = v[r] * scratch[0];
        float lr = s.LearningRate * scratch[1];
        float vhat = a * v[f.Rows + c];
        parameters[i] = parameters[i] * s.Decay - lr * gradient[i] / (MathF.Sqrt(vhat) * s.InvSqrtBias2 + f.Epsilon);
    }

    /// <summary>Phase 2c with a quantised first moment, one thread per block: see <see cref="Block"/> (writes p, the codes and the scale).</summary>
    internal static void QuantizedBlock(Index1D block, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> v, ArrayView<float> scratch,
                                        ArrayView<float> scales, ArrayView<byte> codes, ArrayView<double> partials, FactoredShape f, FactoredStep s)
        => Block(block, parameters, gradient, v, scratch, scales, codes, partials, f, s, write: true);

    /// <summary>Update clipping with a quantised first moment, one thread per block: Σ u² of the block in double into partials[b] (writes nothing else).</summary>
    internal static void QuantizedBlockSquares(Index1D block, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> v, ArrayView<float> scratch,
                                               ArrayView<float> scales, ArrayView<byte> codes, ArrayView<double> partials, FactoredShape f, FactoredStep s)
        => Block(block, parameters, gradient, v, scratch, scales, codes, partials, f, s, write: false);

    /// <summary>
    /// One block b of a quantised first moment, entries e0 … e0 + len − 1: m = β1·q·(scale / Q) + (1 − β1)·s·g in float, u = m/bc1 /
    /// (√v̂·isb2 + ε). With <paramref name="write"/>, a first pass updates p ← p·decay − lr·u and finds max |m|; a second pass forms
    /// m again (the same operations on the same inputs; a GPU compiler may contract them into FMAs differently in the two passes,
    /// which can move m by an ulp: the clamp keeps every code in range) and stores q = clamp(⌊m·(Q/max) + r⌋, −Q, Q) with
    /// r = ½ or <see cref="BlockQuantizer.Uniform(uint, uint, int)"/>, in <see cref="BlockQuantizer"/>'s format, then the new scale.
    /// No thread touches another block's bytes: blocks are powers of two, so a 4-bit block owns B/2 whole bytes.
    /// </summary>
    private static void Block(int b, ArrayView<float> parameters, ArrayView<float> gradient, ArrayView<float> v, ArrayView<float> scratch,
                              ArrayView<float> scales, ArrayView<byte> codes, ArrayView<double> partials, FactoredShape f, FactoredStep s, bool write)
    {
        int e0 = b * f.Block, len = Math.Min(f.Block, f.Length - e0);
        float step = scales[b] / f.Levels;
        float rowScale = scratch[0], lr = s.LearningRate * scratch[1];
        float absmax = 0f;
        double squares = 0;
        for (int j = 0; j < len; j++)
        {
            int e = e0 + j, r = e / f.Columns, c = e - r * f.Columns;
            float m = s.Beta1 * (Code(codes, f, b, j) * step) + s.OneMinusBeta1 * gradient[e];
            float a = v[r] * rowScale;
            float u = m * s.InvBias1 / (MathF.Sqrt(a * v[f.Rows + c]) * s.InvSqrtBias2 + f.Epsilon);
            if (write)
            {
                parameters[e] = parameters[e] * s.Decay - lr * u;
                absmax = MathF.Max(absmax, MathF.Abs(m));
            }
            else squares += u * u;
        }
        if (!write)
        {
            partials[b] = squares;
            return;
        }
        float inv = absmax == 0f ? 0f : f.Levels / absmax;
        if (!(inv <= float.MaxValue)) { inv = 0f; absmax = 0f; }   // max |m| below Q / float.MaxValue: stored as 0 (BlockQuantizer.Quantize)
        if (f.FourBit == 0)
        {
            for (int j = 0; j < len; j++)
            {
                int e = e0 + j;
                float m = s.Beta1 * (Code(codes, f, b, j) * step) + s.OneMinusBeta1 * gradient[e];
                codes[e] = (byte)(sbyte)Quantize(m, inv, f.Levels, s, e);
            }
        }
        else
        {
            // Byte k of the block holds entry k (low nibble) and entry B/2 + k (high nibble); both are read before the byte is written.
            int half = f.Block >> 1;
            for (int k = 0; k < half; k++)
            {
                int lo = 0, hi = 0;
                if (k < len) lo = Quantize(s.Beta1 * (Code(codes, f, b, k) * step) + s.OneMinusBeta1 * gradient[e0 + k], inv, f.Levels, s, e0 + k);
                if (half + k < len)
                    hi = Quantize(s.Beta1 * (Code(codes, f, b, half + k) * step) + s.OneMinusBeta1 * gradient[e0 + half + k], inv, f.Levels, s, e0 + half + k);
                codes[b * half + k] = (byte)((lo & 0xF) | ((hi & 0xF) << 4));
            }
        }
        scales[b] = absmax;
    }

    /// <summary>Entry j of block b's code (BlockQuantizer's format: a signed byte, or a two's-complement nibble, block-planar).</summary>
    private static int Code(ArrayView<byte> codes, FactoredShape f, int b, int j)
    {
        if (f.FourBit == 0) return (sbyte)codes[b * f.Block + j];
        int half = f.Block >> 1;
        bool high = j >= half;
        int at = b * half + (high ? j - half : j);
        int nibble = high ? codes[at] >> 4 : codes[at] & 0xF;
        return (nibble ^ 8) - 8;
    }

    /// <summary>clamp(⌊m·inv + r⌋, −Q, Q), r = ½ or the entry's random offset.</summary>
    private static int Quantize(float m, float inv, int levels, FactoredStep s, int e)
    {
        float r = s.Stochastic != 0 ? BlockQuantizer.Uniform(s.RandomA, s.RandomC, e) : 0.5f;
        int q = (int)MathF.Floor(m * inv + r);
        return q < -levels ? -levels : q > levels ? levels : q;
    }
}
