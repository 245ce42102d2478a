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
    // step allocates nothing per tensor.

    private abstract class TensorKernel
    {
        protected readonly TensorPlan Plan;
        protected readonly float Beta1, Beta2, Epsilon, C1, C2;
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

    /// <summary>Exact AdamW through <see cref="DenseAdamWCpu"/>, in fixed tiles of entries.</summary>
    private sealed class DenseKernel : TensorKernel
    {
        private const int TileSize = 16384;
        private readonly int _tiles;
        private readonly TileKernel _apply;

        public DenseKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
        {
            _tiles = (plan.Length + TileSize - 1) / TileSize;
            _apply = ApplyTile;
        }

        public override bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
            => DenseAdamWCpu.SquaresFinite(g);

        public override void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
            => TileRunner.Run(_tiles, threads, _apply, p, g, m, v, sumM, sumV, s);

        private bool ApplyTile(int tile, in TileBuffers b, in StepScalars s)
        {
            int start = tile * TileSize, len = Math.Min(TileSize, Plan.Length - start);
            DenseAdamWCpu.Step(b.Parameters.Slice(start, len), b.Gradient.Slice(start, len),
                               HasM ? b.FirstMoment.Slice(start, len) : Span<float>.Empty, b.SecondMoment.Slice(start, len),
                               s, Beta1, Beta2, Epsilon);
            return true;
        }
    }

    /// <summary>Shared by the sketched layouts: the per-bucket part of phase 2.</summary>
    private abstract class SketchKernel : TensorKernel
    {
        /// <summary>
        /// 1/occupancy per bucket for <see cref="SecondMomentEstimate.Mean"/> under the Universal layout
        /// (k floats of workspace, no closed form); null otherwise. Rotation occupancies are computed:
        /// rows for buckets the last row reaches, rows − 1 for the others.
        /// </summary>
        protected readonly float[]? InvOccupancy;

        protected SketchKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
        {
            if (plan.SecondMoment == SecondMomentEstimate.Mean && plan.Layout == SketchLayout.Universal)
            {
                var occ = plan.Occupancy();
                InvOccupancy = new float[occ.Length];
                for (int b = 0; b < occ.Length; b++) InvOccupancy[b] = occ[b] == 0 ? 0f : 1f / occ[b];
            }
        }

        /// <summary>
        /// Updates m and v of buckets [b0, b1) from the workspace, then overwrites the workspace with the
        /// per-bucket factor of the parameter update: sumM[b] = lr·m[b]·invBc1/den[b] when β1 ≠ 0
        /// (the update is p ← p·decay − σ·sumM[b]), otherwise sumV[b] = lr/den[b] (p ← p·decay − g·sumV[b]),
        /// with den[b] = √(v[b]·invOcc[b])·invSqrtBc2 + ε; invOcc[b] comes from <see cref="InvOccupancy"/>
        /// when it exists, else it is <paramref name="invOccupancy"/> for the whole range (1 for Sum).
        /// </summary>
        protected void UpdateBuckets(int b0, int b1, in TileBuffers buf, in StepScalars s, float invOccupancy = 1f)
        {
            Span<float> m = buf.FirstMoment, v = buf.SecondMoment, sm = buf.SumM, sv = buf.SumV;
            float lr = s.LearningRate, ib1 = s.InvBiasCorrection1, isb2 = s.InvSqrtBiasCorrection2;
            float[]? inv = InvOccupancy;
            int b = b0;
            if (Vector.IsHardwareAccelerated)
            {
                int w = Vector<float>.Count;
                var vb1 = new Vector<float>(Beta1); var vc1 = new Vector<float>(C1);
                var vb2 = new Vector<float>(Beta2); var vc2 = new Vector<float>(C2);
                var vlr = new Vector<float>(lr); var vlrib1 = new Vector<float>(lr * ib1);
                var visb2 = new Vector<float>(isb2); var veps = new Vector<float>(Epsilon);
                var vocc = new Vector<float>(invOccupancy);
                for (; b <= b1 - w; b += w)
                {
                    var vv = vb2 * new Vector<float>(v.Slice(b)) + vc2 * new Vector<float>(sv.Slice(b));
                    vv.CopyTo(v.Slice(b));
                    var vs = inv is null ? vv * vocc : vv * new Vector<float>(inv, b);
                    var den = Vector.SquareRoot(vs) * visb2 + veps;
                    if (HasM)
                    {
                        var mm = vb1 * new Vector<float>(m.Slice(b)) + vc1 * new Vector<float>(sm.Slice(b));
                        mm.CopyTo(m.Slice(b));
                        (vlrib1 * mm / den).CopyTo(sm.Slice(b));
                    }
                    else (vlr / den).CopyTo(sv.Slice(b));
                }
            }
            for (; b < b1; b++)
            {
                float vv = Beta2 * v[b] + C2 * sv[b];
                v[b] = vv;
                float den = MathF.Sqrt(inv is null ? vv * invOccupancy : vv * inv[b]) * isb2 + Epsilon;
                if (HasM)
                {
                    float mm = Beta1 * m[b] + C1 * sm[b];
                    m[b] = mm;
                    sm[b] = lr * ib1 * mm / den;
                }
                else sv[b] = lr / den;
            }
        }

        /// <summary>acc += σ·g over a contiguous segment.</summary>
        protected static void AddSigned(Span<float> acc, ReadOnlySpan<float> g, float sigma)
        {
            int i = 0;
            if (Vector.IsHardwareAccelerated)
            {
                var vs = new Vector<float>(sigma);
                for (; i <= acc.Length - Vector<float>.Count; i += Vector<float>.Count)
                    (new Vector<float>(acc.Slice(i)) + vs * new Vector<float>(g.Slice(i))).CopyTo(acc.Slice(i));
            }
            for (; i < acc.Length; i++) acc[i] += sigma * g[i];
        }

        /// <summary>acc += g² over a contiguous segment.</summary>
        protected static void AddSquares(Span<float> acc, ReadOnlySpan<float> g)
        {
            int i = 0;
            if (Vector.IsHardwareAccelerated)
            {
                for (; i <= acc.Length - Vector<float>.Count; i += Vector<float>.Count)
                {
                    var x = new Vector<float>(g.Slice(i));
                    (new Vector<float>(acc.Slice(i)) + x * x).CopyTo(acc.Slice(i));
                }
            }
            for (; i < acc.Length; i++) acc[i] += g[i] * g[i];
        }

        /// <summary>p ← p·decay − σ·q over a contiguous segment (β1 ≠ 0).</summary>
        protected static void UpdateSigned(Span<float> p, ReadOnlySpan<float> q, float sigma, float decay)
        {
            int i = 0;
            if (Vector.IsHardwareAccelerated)
            {
                var vs = new Vector<float>(sigma); var vd = new Vector<float>(decay);
                for (; i <= p.Length - Vector<float>.Count; i += Vector<float>.Count)
                    (new Vector<float>(p.Slice(i)) * vd - vs * new Vector<float>(q.Slice(i))).CopyTo(p.Slice(i));
            }
            for (; i < p.Length; i++) p[i] = p[i] * decay - sigma * q[i];
        }

        /// <summary>p ← p·decay − g·w over a contiguous segment (β1 = 0: m̂ = g).</summary>
        protected static void UpdateWithGradient(Span<float> p, ReadOnlySpan<float> g, ReadOnlySpan<float> w, float decay)
        {
            int i = 0;
            if (Vector.IsHardwareAccelerated)
            {
                var vd = new Vector<float>(decay);
                for (; i <= p.Length - Vector<float>.Count; i += Vector<float>.Count)
                    (new Vector<float>(p.Slice(i)) * vd - new Vector<float>(g.Slice(i)) * new Vector<float>(w.Slice(i))).CopyTo(p.Slice(i));
            }
            for (; i < p.Length; i++) p[i] = p[i] * decay - g[i] * w[i];
        }
    }

    /// <summary>
    /// Rotation layout. A tile owns buckets [b0, b1); row r maps them back to columns
    /// c = (b − ρ_r) mod k, i.e. at most two contiguous column segments (clipped to the ragged last
    /// row). Bucket sums are taken row by row, so a bucket's sum is always in row order.
    /// </summary>
    private sealed class RotationKernel : SketchKernel
    {
        private readonly int _k, _rows, _lastLength, _tileBuckets, _tiles;
        private readonly int[] _rho;
        private readonly float[] _sigma;
        private readonly TileKernel _accumulate, _apply;

        public RotationKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
        {
            _k = plan.Buckets; _rows = plan.Rows;
            _lastLength = plan.Length - (_rows - 1) * _k;
            _rho = plan.Rotations.ToArray();
            _sigma = plan.Signs.ToArray().Select(x => (float)x).ToArray();
            // About 32K entries per tile, a multiple of 64 buckets: fixed by the plan, never by the thread count.
            int tb = Math.Max(64, 32768 / _rows);
            _tileBuckets = (tb + 63) / 64 * 64;
            _tiles = (_k + _tileBuckets - 1) / _tileBuckets;
            _accumulate = AccumulateTile;
            _apply = ApplyTile;
        }

        public override bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
            => TileRunner.Run(_tiles, threads, _accumulate, p, g, m, v, sumM, sumV, s);

        public override void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
            => TileRunner.Run(_tiles, threads, _apply, p, g, m, v, sumM, sumV, s);

        /// <summary>
        /// The (at most two) parts of row <paramref name="r"/> that land in buckets [b0, b1): bucket
        /// start, column start and length of each (length 0 when absent or cut off by the ragged row).
        /// </summary>
        private void Segments(int r, int b0, int b1, out int bs1, out int cs1, out int n1, out int bs2, out int cs2, out int n2)
        {
            int rho = _rho[r], rowLength = r == _rows - 1 ? _lastLength : _k;
            // Buckets below ρ come from columns b − ρ + k; buckets from ρ on from columns b − ρ.
            bs1 = b0; int e1 = Math.Min(b1, rho); cs1 = b0 - rho + _k; n1 = Math.Max(0, e1 - bs1);
            bs2 = Math.Max(b0, rho); cs2 = bs2 - rho; n2 = Math.Max(0, b1 - bs2);
            if (cs1 >= rowLength) n1 = 0; else n1 = Math.Min(n1, rowLength - cs1);
            if (cs2 >= rowLength) n2 = 0; else n2 = Math.Min(n2, rowLength - cs2);
        }

        /// <summary>
        /// Mean: the last row reaches buckets [ρ_last, ρ_last + lastLength) mod k (occupancy = rows),
        /// the others hold rows − 1 entries. Splits [b0, b1) at the boundaries of that range.
        /// </summary>
        private void UpdateBucketsMean(int b0, int b1, in TileBuffers buf, in StepScalars s)
        {
            float full = 1f / _rows, partial = _rows > 1 ? 1f / (_rows - 1) : 0f;
            int start = _rho[_rows - 1], end = start + _lastLength;   // end may exceed k: wraps to [0, end − k)
            Span<int> cuts = stackalloc int[5];
            int n = 0;
            cuts[n++] = b1;
            if (start > b0 && start < b1) cuts[n++] = start;
            if (end < _k && end > b0 && end < b1) cuts[n++] = end;
            if (end > _k && end - _k > b0 && end - _k < b1) cuts[n++] = end - _k;
            cuts[..n].Sort();
            int from = b0;
            for (int c = 0; c < n; c++)
            {
                int to = cuts[c];
                if (to <= from) continue;
                bool inLast = (from >= start && from < end) || (from < end - _k);
                UpdateBuckets(from, to, buf, s, inLast ? full : partial);
                from = to;
            }
        }

        private bool AccumulateTile(int tile, in TileBuffers buf, in StepScalars s)
        {
            int b0 = tile * _tileBuckets, b1 = Math.Min(_k, b0 + _tileBuckets);
            var g = buf.Gradient;
            Span<float> sm = HasM ? buf.SumM.Slice(b0, b1 - b0) : default, sv = buf.SumV.Slice(b0, b1 - b0);
            sm.Clear(); sv.Clear();
            for (int r = 0; r < _rows; r++)
            {
                Segments(r, b0, b1, out int bs1, out int cs1, out int n1, out int bs2, out int cs2, out int n2);
                int row = r * _k;
                float sigma = _sigma[r];
                // Within a row the two segments cover disjoint buckets, so their order does not matter.
                if (n1 > 0)
                {
                    var gs = g.Slice(row + cs1, n1);
                    if (HasM) AddSigned(sm.Slice(bs1 - b0, n1), gs, sigma);
                    AddSquares(sv.Slice(bs1 - b0, n1), gs);
                }
                if (n2 > 0)
                {
                    var gs = g.Slice(row + cs2, n2);
                    if (HasM) AddSigned(sm.Slice(bs2 - b0, n2), gs, sigma);
                    AddSquares(sv.Slice(bs2 - b0, n2), gs);
                }
            }
            return DenseAdamWCpu.AllFinite(sv);
        }

        private bool ApplyTile(int tile, in TileBuffers buf, in StepScalars s)
        {
            int b0 = tile * _tileBuckets, b1 = Math.Min(_k, b0 + _tileBuckets);
            if (Plan.SecondMoment == SecondMomentEstimate.Mean) UpdateBucketsMean(b0, b1, buf, s);
            else UpdateBuckets(b0, b1, buf, s);
            var p = buf.Parameters;
            var g = buf.Gradient;
            ReadOnlySpan<float> factor = HasM ? buf.SumM : buf.SumV;
            float decay = s.Decay;
            for (int r = 0; r < _rows; r++)
            {
                Segments(r, b0, b1, out int bs1, out int cs1, out int n1, out int bs2, out int cs2, out int n2);
                int row = r * _k;
                float sigma = _sigma[r];
                if (n1 > 0)
                {
                    if (HasM) UpdateSigned(p.Slice(row + cs1, n1), factor.Slice(bs1, n1), sigma, decay);
                    else UpdateWithGradient(p.Slice(row + cs1, n1), g.Slice(row + cs1, n1), factor.Slice(bs1, n1), decay);
                }
                if (n2 > 0)
                {
                    if (HasM) UpdateSigned(p.Slice(row + cs2, n2), factor.Slice(bs2, n2), sigma, decay);
                    else UpdateWithGradient(p.Slice(row + cs2, n2), g.Slice(row + cs2, n2), factor.Slice(bs2, n2), decay);
                }
            }
            return true;
        }
    }

    /// <summary>
    /// Universal (Carter–Wegman) layout. Phase 1 is a sequential scatter in index order (so every
    /// bucket's sum is in a fixed order); phase 2 updates the buckets in tiles, then gathers in tiles
    /// of entries. Hashes are computed incrementally: (a·(i+1) + b) mod p = ((a·i + b) mod p + a) mod p.
    /// </summary>
    private sealed class UniversalKernel : SketchKernel
    {
        private const int BucketTile = 8192, EntryTile = 16384;
        private readonly uint _a, _b, _sa, _sb;
        private readonly int _k, _d;
        private readonly TileKernel _scatter, _buckets, _entries;

        public UniversalKernel(TensorPlan plan, OptimizerSettings settings) : base(plan, settings)
        {
            _a = plan.UniversalA; _b = plan.UniversalB; _sa = plan.UniversalSignA; _sb = plan.UniversalSignB;
            _k = plan.Buckets; _d = plan.Length;
            _scatter = ScatterTileKernel;
            _buckets = BucketTileKernel;
            _entries = EntryTileKernel;
        }

        // Phase 1 splits the buckets into equal ranges, one tile each (UniversalCpu.ScatterTiles): every bucket is still
        // summed in index order, so the tile count never changes the result.
        public override bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
            => TileRunner.Run(UniversalCpu.ScatterTiles(_d, threads), threads, _scatter, p, g, m, v, sumM, sumV, s);

        public override void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
        {
            TileRunner.Run((_k + BucketTile - 1) / BucketTile, threads, _buckets, p, g, m, v, sumM, sumV, s);
            TileRunner.Run((_d + EntryTile - 1) / EntryTile, threads, _entries, p, g, m, v, sumM, sumV, s);
        }

        private bool ScatterTileKernel(int tile, in TileBuffers buf, in StepScalars s)
            => UniversalCpu.AccumulateTile(tile, in buf, _k, _a, _b, _sa, _sb);

        private bool BucketTileKernel(int tile, in TileBuffers buf, in StepScalars s)
        {
            int b0 = tile * BucketTile;
            UpdateBuckets(b0, Math.Min(_k, b0 + BucketTile), buf, s);
            return true;
        }

        private bool EntryTileKernel(int tile, in TileBuffers buf, in StepScalars s)
        {
            UniversalCpu.ApplyTile(tile, in buf, EntryTile, s.Decay, _k, _a, _b, _sa, _sb);
            return true;
        }
    }
}
