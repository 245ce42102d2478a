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

    protected CpuTensorKernel(TensorPlan plan, OptimizerSettings settings)
    {
        Plan = plan;
        K = KernelCoefficients.From(settings);
        HasM = plan.HasFirstMoment;
    }

    public abstract bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s);
    public abstract void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s);

    /// <summary>The kind of kernel a plan takes.</summary>
    /// <param name="plan">The tensor's plan.</param>
    /// <param name="settings">The optimizer's settings.</param>
    /// <param name="firstMomentCodes">The codes of a quantised first moment (<see cref="TensorPlan.IsQuantized"/>): state the optimizer owns.</param>
    public static CpuTensorKernel Create(TensorPlan plan, OptimizerSettings settings, byte[]? firstMomentCodes = null)
        => plan.IsDense ? new DenseCpuKernel(plan, settings)
         : plan.IsFactored ? new FactoredCpuKernel(plan, settings, firstMomentCodes)
         : plan.Layout == SketchLayout.Rotation ? new RotationCpuKernel(plan, settings)
         : new UniversalCpuKernel(plan, settings);
}

/// <summary>Exact AdamW through <see cref="DenseAdamWCpu"/>, in tiles of <see cref="KernelTiles.ElementTile"/> entries.</summary>
internal sealed class DenseCpuKernel : CpuTensorKernel
{
    private readonly int _tiles;
    private readonly TileKernel _apply;

    public DenseCpuKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
    {
        _tiles = KernelTiles.Tiles(plan.Length, KernelTiles.ElementTile);
        _apply = ApplyTile;
    }

    public override bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
        => DenseAdamWCpu.SquaresFinite(g);

    public override void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
        => TileRunner.Run(_tiles, threads, _apply, p, g, m, v, sumM, sumV, s);

    private bool ApplyTile(int tile, in TileBuffers b, in StepScalars s)
    {
        int start = tile * KernelTiles.ElementTile, len = Math.Min(KernelTiles.ElementTile, Plan.Length - start);
        DenseAdamWCpu.Step(b.Parameters.Slice(start, len), b.Gradient.Slice(start, len),
                           HasM ? b.FirstMoment.Slice(start, len) : default, b.SecondMoment.Slice(start, len),
                           in s, in K);
        return true;
    }
}

/// <summary>
/// Rotation layout: phase 1 <see cref="RotationCpu.AccumulateTile"/> and phase 2 <see cref="RotationCpu.UpdateApplyTile"/> over
/// tiles of <see cref="KernelTiles.RotationTileBuckets"/> buckets, non-temporal sums from
/// <see cref="KernelTiles.NonTemporalSumsMinLength"/> entries: what the generated optimizers call, with the row constants in arrays.
/// </summary>
internal sealed class RotationCpuKernel : CpuTensorKernel
{
    private readonly int _k, _lastLength, _tiles;
    private readonly bool _nonTemporal, _mean;
    private readonly int[] _rho, _sigma;
    private readonly TileKernel _accumulate, _apply;

    public RotationCpuKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
    {
        _k = plan.Buckets;
        _lastLength = plan.Length - (plan.Rows - 1) * _k;
        _rho = plan.Rotations.ToArray();
        _sigma = plan.Signs.ToArray();
        _tiles = KernelTiles.Tiles(_k, KernelTiles.RotationTileBuckets);
        _nonTemporal = KernelTiles.NonTemporalSums(plan.Length);
        _mean = plan.SecondMoment == SecondMomentEstimate.Mean;
        _accumulate = AccumulateTile;
        _apply = ApplyTile;
    }

    /// <summary>Whether phase 1 writes its sums with non-temporal stores (<see cref="KernelTiles.NonTemporalSums"/>).</summary>
    internal bool NonTemporalSums => _nonTemporal;

    public override bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
        => TileRunner.Run(_tiles, threads, _accumulate, p, g, m, v, sumM, sumV, s);

    public override void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
        => TileRunner.Run(_tiles, threads, _apply, p, g, m, v, sumM, sumV, s);

    private bool AccumulateTile(int tile, in TileBuffers buf, in StepScalars s)
    {
        int b0 = tile * KernelTiles.RotationTileBuckets, b1 = Math.Min(b0 + KernelTiles.RotationTileBuckets, _k);
        return RotationCpu.AccumulateTile(buf.Gradient, buf.SumM, buf.SumV, b0, b1, _k, _lastLength, _rho, _sigma, _nonTemporal);
    }

    private bool ApplyTile(int tile, in TileBuffers buf, in StepScalars s)
    {
        int b0 = tile * KernelTiles.RotationTileBuckets, b1 = Math.Min(b0 + KernelTiles.RotationTileBuckets, _k);
        RotationCpu.UpdateApplyTile(buf.Parameters, HasM ? default : buf.Gradient, buf.FirstMoment, buf.SecondMoment, buf.SumM, buf.SumV,
                                    b0, b1, _k, _lastLength, _rho, _sigma, K.Beta1, K.OneMinusBeta1, K.Beta2, K.OneMinusBeta2, K.Epsilon, in s, _mean);
        return true;
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
        => TileRunner.Run(UniversalCpu.ScatterTiles(_d, threads), threads, _scatter, p, g, m, v, sumM, sumV, s);

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
        if (_occupancy is null)
            RotationCpu.UpdateBuckets(buf.FirstMoment, buf.SecondMoment, buf.SumM, buf.SumV, b0, b1, K.Beta1, K.OneMinusBeta1, K.Beta2, K.OneMinusBeta2, K.Epsilon, in s);
        else
            RotationCpu.UpdateBucketsMean(buf.FirstMoment, buf.SecondMoment, buf.SumM, buf.SumV, b0, b1, K.Beta1, K.OneMinusBeta1, K.Beta2, K.OneMinusBeta2, K.Epsilon, in s, _occupancy);
        return true;
    }

    private bool EntryTileKernel(int tile, in TileBuffers buf, in StepScalars s)
    {
        UniversalCpu.ApplyTile(tile, in buf, KernelTiles.ElementTile, s.Decay, _k, _a, _b, _sa, _sb);
        return true;
    }
}
