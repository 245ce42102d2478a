using System.Numerics;
using Collins.Hashing;
using Collins.Kernels;

namespace Collins;

/// <summary>
/// The run-time (non-specialised) Count-Sketch Adam optimizer, for shapes known only at run time.
/// It derives exactly the same hash constants as the generated optimizers (through
/// <see cref="TensorPlan"/>), loops over rows with run-time constants, and keeps its state in CPU
/// arrays or, when constructed with an ILGPU accelerator, on that accelerator (generic kernels). It follows the two-phase step protocol of <see cref="SketchedOptimizerBase"/>: every
/// argument is validated before anything is written, a non-finite gradient changes nothing, and
/// results are bit-identical for any <see cref="SketchedOptimizerBase.MaxThreads"/>.
/// </summary>
/// <remarks>
/// Rotation tensors are processed in tiles of buckets: a tile sums, for each row in order, the
/// contiguous column segments that rotate into its buckets (vectorised), then applies the update
/// to the same segments. Universal tensors accumulate sequentially in index order (a scatter) and
/// apply in parallel tiles of entries (a gather). Dense tensors use <see cref="DenseAdamWCpu"/>.
/// </remarks>
public sealed partial class CountSketchAdam : SketchedOptimizerBase
{
    private readonly TensorKernel[] _kernels;

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
        _kernels = new TensorKernel[Tensors.Count];
        for (int i = 0; i < Tensors.Count; i++)
        {
            var plan = Tensors[i];
            _kernels[i] = plan.IsDense ? new DenseKernel(plan, settings)
                        : plan.Layout == SketchLayout.Rotation ? new RotationKernel(plan, settings)
                        : new UniversalKernel(plan, settings);
        }
        if (accelerator is not null) InitializeDevice(accelerator);
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
        return StepCore(learningRate, new ArrayBuffers(parameters, gradients));
    }

    // The buffer lists seen through structs, so the generic StepCore neither boxes them nor copies them into arrays.
    private readonly struct ArrayBuffers(float[][] p, float[][] g) : IStepBuffers
    {
        public int ParameterCount => p.Length;
        public int GradientCount => g.Length;
        public Span<float> Parameters(int i) => p[i];
        public ReadOnlySpan<float> Gradient(int i) => g[i];
    }

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
        return StepCore(learningRate, new MemoryBuffers(parameters, gradients));
    }

    private StepOutcome StepCore<TBuffers>(float learningRate, TBuffers buffers) where TBuffers : struct, IStepBuffers
    {
        var s = BeginStep(learningRate, onDevice: false);
        bool finite = true;
        try
        {
            int n = Tensors.Count;
            ValidateBuffers(ref buffers);

            int threads = MaxThreads;
            // Phase 1: bucket sums into the workspace; nothing of the state is written.
            for (int i = 0; i < n; i++)
                finite &= NoteFinite(i, _kernels[i].Accumulate(threads, buffers.Parameters(i), buffers.Gradient(i), FirstMoments[i], SecondMoments[i], SumM[i], SumV[i], s), buffers.Gradient(i));
            // Phase 2: moments and parameters, only when every gradient was finite.
            if (finite)
                for (int i = 0; i < n; i++)
                    _kernels[i].Apply(threads, buffers.Parameters(i), buffers.Gradient(i), FirstMoments[i], SecondMoments[i], SumM[i], SumV[i], s);
        }
        catch
        {
            AbortStep();
            throw;
        }
        return EndStep(finite);
    }

    // ---------------------------------------------------------------------------------------------
    // Kernels. Each tensor gets one kernel object at construction; its delegates are cached so a
    // step allocates nothing per tensor. They call the same kernel library (DenseAdamWCpu, RotationCpu,
    // UniversalCpu) with the same tile table (KernelTiles) and the same float constants as the generated
    // optimizers, so the two are bit-identical; only the constants are run-time values here.

    private abstract class TensorKernel
    {
        protected readonly TensorPlan Plan;
        // β1, 1 − β1, β2, 1 − β2 and ε as the generated kernels take them: the differences formed in double, rounded once.
        protected readonly float Beta1, C1, Beta2, C2, Epsilon;
        protected readonly bool HasM;

        protected TensorKernel(TensorPlan plan, OptimizerSettings settings)
        {
            Plan = plan;
            Beta1 = (float)settings.Beta1; Beta2 = (float)settings.Beta2; Epsilon = (float)settings.Epsilon;
            C1 = (float)(1.0 - settings.Beta1); C2 = (float)(1.0 - settings.Beta2);
            HasM = plan.HasFirstMoment;
        }

        public abstract bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s);
        public abstract void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s);
    }

    /// <summary>Exact AdamW through <see cref="DenseAdamWCpu"/>, in tiles of <see cref="KernelTiles.ElementTile"/> entries.</summary>
    private sealed class DenseKernel : TensorKernel
    {
        private readonly int _tiles;
        private readonly double _beta1, _beta2;
        private readonly TileKernel _apply;

        public DenseKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
        {
            _tiles = KernelTiles.Tiles(plan.Length, KernelTiles.ElementTile);
            _beta1 = settings.Beta1; _beta2 = settings.Beta2;
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
                               in s, beta1: _beta1, beta2: _beta2, epsilon: Epsilon);
            return true;
        }
    }

    /// <summary>
    /// Rotation layout: phase 1 <see cref="RotationCpu.AccumulateTile"/> and phase 2 <see cref="RotationCpu.UpdateApplyTile"/> over
    /// tiles of <see cref="KernelTiles.RotationTileBuckets"/> buckets, non-temporal sums from
    /// <see cref="KernelTiles.NonTemporalSumsMinLength"/> entries: what the generated optimizers call, with the row constants in arrays.
    /// </summary>
    private sealed class RotationKernel : TensorKernel
    {
        private readonly int _k, _lastLength, _tiles;
        private readonly bool _nonTemporal, _mean;
        private readonly int[] _rho, _sigma;
        private readonly TileKernel _accumulate, _apply;

        public RotationKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
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
                                        b0, b1, _k, _lastLength, _rho, _sigma, Beta1, C1, Beta2, C2, Epsilon, in s, _mean);
            return true;
        }
    }

    /// <summary>
    /// Universal (Carter–Wegman) layout: phase 1 <see cref="UniversalCpu.AccumulateTile"/> (one bucket range per core, every bucket
    /// summed in index order), phase 2 the bucket update in tiles of <see cref="KernelTiles.UniversalBucketTile"/> and the gather
    /// <see cref="UniversalCpu.ApplyTile"/> in tiles of <see cref="KernelTiles.ElementTile"/> entries, as the generated optimizers.
    /// </summary>
    private sealed class UniversalKernel : TensorKernel
    {
        private readonly uint _a, _b, _sa, _sb;
        private readonly int _k, _d;
        private readonly float[]? _occupancy;
        private readonly TileKernel _scatter, _buckets, _entries;

        public UniversalKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
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
                RotationCpu.UpdateBuckets(buf.FirstMoment, buf.SecondMoment, buf.SumM, buf.SumV, b0, b1, Beta1, C1, Beta2, C2, Epsilon, in s);
            else
                RotationCpu.UpdateBucketsMean(buf.FirstMoment, buf.SecondMoment, buf.SumM, buf.SumV, b0, b1, Beta1, C1, Beta2, C2, Epsilon, in s, _occupancy);
            return true;
        }

        private bool EntryTileKernel(int tile, in TileBuffers buf, in StepScalars s)
        {
            UniversalCpu.ApplyTile(tile, in buf, KernelTiles.ElementTile, s.Decay, _k, _a, _b, _sa, _sb);
            return true;
        }
    }
}
