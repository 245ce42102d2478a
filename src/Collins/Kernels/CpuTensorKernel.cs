using System.Numerics;

namespace Collins.Kernels;

/// <summary>
/// One tensor's CPU step, one class per kind of tensor (dense, Rotation, Universal, factored): phase 1 (<see cref="Accumulate"/>, reads
/// the gradient, writes only the workspace, returns the verdict) and phase 2 (<see cref="Apply"/>, moments and parameters).
/// Every optimizer — generated or run-time — runs these, built from its <see cref="TensorPlan"/>s, over the fixed tiles of
/// <see cref="KernelTiles"/>; a new state estimator is one new kind here (and its kernels), not edits in the emitter.
/// Each kind caches its tile delegates at construction, so a step allocates nothing.
/// </summary>
internal abstract class CpuTensorKernel
{
    protected readonly TensorPlan Plan;
    protected readonly KernelCoefficients K;
    protected readonly bool HasM;
    /// <summary>The optimizer clips by the global gradient norm (<see cref="OptimizerSettings.MaxGradientNorm"/> &gt; 0): <see cref="Accumulate"/> forms <see cref="GradientSquares"/>.</summary>
    protected readonly bool SumsSquares;

    protected CpuTensorKernel(TensorPlan plan, OptimizerSettings settings)
    {
        Plan = plan;
        K = KernelCoefficients.From(settings);
        HasM = plan.HasFirstMoment;
        SumsSquares = settings.MaxGradientNorm > 0;
    }

    /// <summary>
    /// Σ g² of the gradient the last finite <see cref="Accumulate"/> read, in double, from the float sums phase 1 forms anyway
    /// (bucket sums, row sums; a dense tensor's squares in the pass that checks them). Formed only when
    /// <see cref="SumsSquares"/>; the base step adds them into the global norm of gradient-norm clipping.
    /// </summary>
    public double GradientSquares { get; protected set; }

    /// <summary>
    /// The coefficients phase 2 uses under gradient scale s (<see cref="StepScalars.GradientScale"/>): (1 − β1)·s and
    /// (1 − β2)·(s·s), s·s rounded to float, so that m receives s·Σσg and v receives (s·s)·Σg², each up to one rounding.
    /// Multiplying by s = 1 is exact: without clipping the coefficients are <see cref="K"/>'s, bit for bit.
    /// </summary>
    protected KernelCoefficients Scaled(in StepScalars s)
        => K with { OneMinusBeta1 = K.OneMinusBeta1 * s.GradientScale, OneMinusBeta2 = K.OneMinusBeta2 * (s.GradientScale * s.GradientScale) };

    /// <summary>
    /// The scalars of a phase 2 that reads g itself (β1 = 0: m̂ = g): lr·s as the learning rate, so the update is (lr·s)·g / (…)
    /// = lr·(s·g) / (…) up to one rounding, and <see cref="StepScalars.GradientScale"/> 1 (s is folded in). Exact when s = 1.
    /// </summary>
    protected static StepScalars GradientScaled(in StepScalars s)
        => new(s.LearningRate * s.GradientScale, s.Decay, s.InvBiasCorrection1, s.InvSqrtBiasCorrection2, s.Step);

    /// <summary>
    /// What a sketch's or a dense tensor's phase 2 runs with under gradient scale s: the coefficients <see cref="Scaled"/>, and the
    /// scalars as given with a first moment (s is in the coefficients), or <see cref="GradientScaled"/> without one (phase 2 reads g).
    /// </summary>
    protected (KernelCoefficients Coefficients, StepScalars Scalars) PhaseTwo(in StepScalars s) => (Scaled(in s), HasM ? s : GradientScaled(in s));

    public abstract bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s);
    public abstract void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s);

    /// <summary>The kind of kernel a plan takes.</summary>
    /// <param name="plan">The tensor's plan.</param>
    /// <param name="settings">The optimizer's settings.</param>
    /// <param name="firstMomentCodes">The codes of a quantised first moment (<see cref="TensorPlan.IsQuantized"/>): state the optimizer owns.</param>
    /// <param name="tuning">The CPU tuning of the kinds that have one (Rotation, factored); null: <see cref="CpuTuning.Current"/>.</param>
    public static CpuTensorKernel Create(TensorPlan plan, OptimizerSettings settings, byte[]? firstMomentCodes = null, CpuTuning? tuning = null)
        => plan.IsDense ? new DenseCpuKernel(plan, settings)
         : plan.IsFactored ? new FactoredCpuKernel(plan, settings, firstMomentCodes, tuning)
         : plan.Layout == SketchLayout.Rotation ? new RotationCpuKernel(plan, settings, tuning)
         : new UniversalCpuKernel(plan, settings);
}

/// <summary>Exact AdamW through <see cref="DenseAdamWCpu"/>, in tiles of <see cref="KernelTiles.ElementTile"/> entries.</summary>
internal sealed class DenseCpuKernel : CpuTensorKernel
{
    private readonly int _tiles;
    private readonly TileKernel _apply, _check;

    public DenseCpuKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
    {
        _tiles = KernelTiles.Tiles(plan.Length, KernelTiles.ElementTile);
        _apply = ApplyTile;
        _check = CheckTile;
    }

    public override bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
    {
        // The finite check in the same tiles as phase 2, on every thread (a verdict, so the split changes nothing).
        if (!SumsSquares) return TileRunner.Run(_tiles, threads, _check, p, g, m, v, sumM, sumV, s);
        // One pass that checks and sums: Σ of the float squares is finite exactly when every square is (SquaresFinite's verdict).
        double squares = GradientNorm.SumOfSquares(g);
        GradientSquares = squares;
        return double.IsFinite(squares);
    }

    public override void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
        => TileRunner.Run(_tiles, threads, _apply, p, g, m, v, sumM, sumV, s);

    /// <summary>The entries of one tile (the same tiles in both phases).</summary>
    private (int Start, int Length) Range(int tile)
    {
        int start = tile * KernelTiles.ElementTile;
        return (start, Math.Min(KernelTiles.ElementTile, Plan.Length - start));
    }

    private bool CheckTile(int tile, in TileBuffers b, in StepScalars s)
    {
        var (start, len) = Range(tile);
        return DenseAdamWCpu.SquaresFinite(b.Gradient.Slice(start, len));
    }

    private bool ApplyTile(int tile, in TileBuffers b, in StepScalars s)
    {
        var (start, len) = Range(tile);
        var (k, scalars) = PhaseTwo(in s);
        DenseAdamWCpu.Step(b.Parameters.Slice(start, len), b.Gradient.Slice(start, len),
                           HasM ? b.FirstMoment.Slice(start, len) : default, b.SecondMoment.Slice(start, len),
                           in scalars, in k);
        return true;
    }
}

/// <summary>
/// Rotation layout: phase 1 <see cref="RotationCpu.AccumulateTile"/> and phase 2 <see cref="RotationCpu.UpdateApplyTile"/> over
/// tiles of <see cref="CpuTuning.TileBuckets"/> buckets, non-temporal sums from <see cref="CpuTuning.NonTemporalMinLength"/> entries
/// and the prefetch distances of the process's <see cref="CpuTuning"/> (none of which changes a value): what the generated
/// optimizers call, with the row constants in arrays.
/// </summary>
internal sealed class RotationCpuKernel : CpuTensorKernel
{
    private readonly int _k, _lastLength, _tiles;
    private readonly bool _nonTemporal, _mean;
    private readonly int[] _rho, _sigma;
    private readonly TileKernel _accumulate, _apply;

    public RotationCpuKernel(TensorPlan plan, OptimizerSettings settings, CpuTuning? tuning = null) : base(plan, settings)
    {
        Tuning = tuning ?? CpuTuning.Current;
        Tuning.Validate();
        _k = plan.Buckets;
        _lastLength = plan.Length - (plan.Rows - 1) * _k;
        _rho = plan.Rotations.ToArray();
        _sigma = plan.Signs.ToArray();
        _tiles = KernelTiles.Tiles(_k, Tuning.TileBuckets);
        _nonTemporal = Tuning.NonTemporalSums(plan.Length);
        _mean = plan.SecondMoment == SecondMomentEstimate.Mean;
        _accumulate = AccumulateTile;
        _apply = ApplyTile;
    }

    /// <summary>The tuning this kernel runs with.</summary>
    internal CpuTuning Tuning { get; }

    /// <summary>Tiles per phase.</summary>
    internal int Tiles => _tiles;

    /// <summary>Whether phase 1 writes its sums with non-temporal stores (<see cref="CpuTuning.NonTemporalSums"/>).</summary>
    internal bool NonTemporalSums => _nonTemporal;

    public override bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
    {
        bool finite = TileRunner.Run(_tiles, threads, _accumulate, p, g, m, v, sumM, sumV, s);
        if (SumsSquares && finite) GradientSquares = GradientNorm.Sum(sumV[.._k]);
        return finite;
    }

    public override void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
        => TileRunner.Run(_tiles, threads, _apply, p, g, m, v, sumM, sumV, s);

    private bool AccumulateTile(int tile, in TileBuffers buf, in StepScalars s)
    {
        var (b0, b1) = Buckets(tile);
        return RotationCpu.AccumulateTilePrefetched(buf.Gradient, buf.SumM, buf.SumV, b0, b1, _k, _lastLength, _rho, _sigma, _nonTemporal,
                                                    Tuning.Phase1Prefetch, Tuning.Phase1RowsPerPass);
    }

    private bool ApplyTile(int tile, in TileBuffers buf, in StepScalars s)
    {
        var (b0, b1) = Buckets(tile);
        var (k, scalars) = PhaseTwo(in s);
        RotationCpu.UpdateApplyTilePrefetched(buf.Parameters, HasM ? default : buf.Gradient, buf.FirstMoment, buf.SecondMoment, buf.SumM, buf.SumV,
                                    b0, b1, _k, _lastLength, _rho, _sigma, k.Beta1, k.OneMinusBeta1, k.Beta2, k.OneMinusBeta2, k.Epsilon, in scalars, _mean,
                                    Tuning.Phase2Prefetch, Tuning.SketchPrefetch, Tuning.Phase2RowsPerPass);
        return true;
    }

    /// <summary>The buckets [b0, b1) of <paramref name="tile"/>, the same in both phases.</summary>
    private (int Start, int End) Buckets(int tile)
    {
        int b0 = tile * Tuning.TileBuckets;
        return (b0, Math.Min(b0 + Tuning.TileBuckets, _k));
    }
}

/// <summary>
/// Universal (Carter–Wegman) layout: phase 1 <see cref="UniversalCpu.AccumulateTile"/> (one bucket range per core, every bucket
/// summed in index order), phase 2 the bucket update in tiles of <see cref="KernelTiles.UniversalBucketTile"/> and the gather
/// <see cref="UniversalCpu.ApplyTile"/> in tiles of <see cref="KernelTiles.ElementTile"/> entries, as the generated optimizers.
/// </summary>
internal sealed class UniversalCpuKernel : CpuTensorKernel
{
    private readonly uint _a, _b, _sa, _sb;
    private readonly int _k, _d;
    private readonly float[]? _occupancy;
    private readonly TileKernel _scatter, _buckets, _entries;

    public UniversalCpuKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
    {
        _a = plan.UniversalA; _b = plan.UniversalB; _sa = plan.UniversalSignA; _sb = plan.UniversalSignB;
        _k = plan.Buckets; _d = plan.Length;
        if (plan.SecondMoment == SecondMomentEstimate.Mean)
        {
            var counts = plan.Occupancy();
            _occupancy = new float[counts.Length];
            for (int b = 0; b < counts.Length; b++) _occupancy[b] = counts[b];
        }
        _scatter = ScatterTileKernel;
        _buckets = BucketTileKernel;
        _entries = EntryTileKernel;
    }

    public override bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
    {
        bool finite = TileRunner.Run(UniversalCpu.ScatterTiles(_d, threads), threads, _scatter, p, g, m, v, sumM, sumV, s);
        if (SumsSquares && finite) GradientSquares = GradientNorm.Sum(sumV[.._k]);
        return finite;
    }

    public override void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
    {
        TileRunner.Run(KernelTiles.Tiles(_k, KernelTiles.UniversalBucketTile), threads, _buckets, p, g, m, v, sumM, sumV, s);
        TileRunner.Run(KernelTiles.Tiles(_d, KernelTiles.ElementTile), threads, _entries, p, g, m, v, sumM, sumV, s);
    }

    private bool ScatterTileKernel(int tile, in TileBuffers buf, in StepScalars s)
        => UniversalCpu.AccumulateTile(tile, in buf, _k, _a, _b, _sa, _sb);

    private bool BucketTileKernel(int tile, in TileBuffers buf, in StepScalars s)
    {
        int b0 = tile * KernelTiles.UniversalBucketTile, b1 = Math.Min(b0 + KernelTiles.UniversalBucketTile, _k);
        var (k, scalars) = PhaseTwo(in s);   // β1 = 0: the coefficient lr·s / (…) multiplies g in the gather
        if (_occupancy is null)
            RotationCpu.UpdateBuckets(buf.FirstMoment, buf.SecondMoment, buf.SumM, buf.SumV, b0, b1, k.Beta1, k.OneMinusBeta1, k.Beta2, k.OneMinusBeta2, k.Epsilon, in scalars);
        else
            RotationCpu.UpdateBucketsMean(buf.FirstMoment, buf.SecondMoment, buf.SumM, buf.SumV, b0, b1, k.Beta1, k.OneMinusBeta1, k.Beta2, k.OneMinusBeta2, k.Epsilon, in scalars, _occupancy);
        return true;
    }

    private bool EntryTileKernel(int tile, in TileBuffers buf, in StepScalars s)
    {
        UniversalCpu.ApplyTile(tile, in buf, KernelTiles.ElementTile, s.Decay, _k, _a, _b, _sa, _sb);
        return true;
    }
}

/// <summary>
/// The sums behind global gradient-norm clipping (<see cref="OptimizerSettings.MaxGradientNorm"/>), in double and in a fixed order
/// (float lanes widened into double lanes, the lanes added in order), so a result never depends on the thread count.
/// </summary>
internal static class GradientNorm
{
    /// <summary>Σ of <paramref name="values"/> (finite sums of squares from phase 1) in double.</summary>
    public static double Sum(ReadOnlySpan<float> values) => Sum<Value>(values);

    /// <summary>
    /// Σ g² of a dense tensor's gradient: each square in float (as the kernels form it), added in double. +Inf or NaN exactly
    /// when some square is not a finite float (a double sum of at most 2^31 finite floats cannot overflow), so the one pass is
    /// also the phase-1 verdict of <see cref="DenseAdamWCpu.SquaresFinite"/>.
    /// </summary>
    public static double SumOfSquares(ReadOnlySpan<float> gradient) => Sum<Square>(gradient);

    /// <summary>The term a value contributes: itself, or its square formed in float.</summary>
    private interface ITerm
    {
        static abstract float Of(float x);
        static abstract Vector<float> Of(Vector<float> x);
    }

    private readonly struct Value : ITerm
    {
        public static float Of(float x) => x;
        public static Vector<float> Of(Vector<float> x) => x;
    }

    private readonly struct Square : ITerm
    {
        public static float Of(float x) => x * x;
        public static Vector<float> Of(Vector<float> x) => x * x;
    }

    private static double Sum<T>(ReadOnlySpan<float> values) where T : struct, ITerm
    {
        int i = 0;
        double sum = 0;
        if (Vector.IsHardwareAccelerated && values.Length >= Vector<float>.Count)
        {
            var acc0 = Vector<double>.Zero; var acc1 = Vector<double>.Zero;
            for (; i <= values.Length - Vector<float>.Count; i += Vector<float>.Count)
            {
                Vector.Widen(T.Of(new Vector<float>(values[i..])), out var lo, out var hi);
                acc0 += lo;
                acc1 += hi;
            }
            var lanes = acc0 + acc1;
            for (int l = 0; l < Vector<double>.Count; l++) sum += lanes[l];
        }
        for (; i < values.Length; i++) sum += T.Of(values[i]);
        return sum;
    }
}
