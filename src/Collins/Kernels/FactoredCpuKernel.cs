using System.Numerics;
using System.Runtime.Intrinsics;

namespace Collins.Kernels;

/// <summary>
/// The factored second moment (<see cref="SecondMomentEstimate.Factored"/>, β1 = 0) of a tensor viewed as R rows × C columns
/// (C its last dimension): v is R row means and C column means of g², kept as EMAs (state: R + C floats, in the tensor's
/// second-moment array, rows first), and v̂[r, c] = R[r]·C[c] / mean(R).
/// </summary>
/// <remarks>
/// Phase 1 (<see cref="Accumulate"/>), in fixed tiles of whole rows (about <see cref="KernelTiles.ElementTile"/> entries each):
/// each tile writes its rows' Σ g² and its own partial column sums; the partials are then added in tile order, so the result
/// is the same for any thread count. The verdict is finite when every row and column sum is (a gradient whose squares
/// overflow is refused, as for every kind). Phase 2 (<see cref="Apply"/>): the R + C EMAs and mean(R) (in double) once, then,
/// in the same row tiles, p ← p·decay − lr·g / (√(R[r]/mean(R)·C[c])·isb2 + ε); when mean(R) is 0 (every gradient so far was 0)
/// v̂ is 0. With update clipping (<see cref="OptimizerSettings.UpdateClipping"/> d &gt; 0) a pass before the update forms
/// RMS(u) of u = g / (√v̂·isb2 + ε) over the tensor (per tile in double, tiles in order) and scales lr by 1 / max(1, RMS(u)/d).
/// With the β2 schedule (<see cref="OptimizerSettings.Beta2Schedule"/> c &gt; 0) step t decays by β̂2 = 1 − t^−c and isb2 = 1.
/// With gradient-norm clipping (<see cref="StepScalars.GradientScale"/> s) the EMAs take (1 − β2)·(s·s) and, without a first moment,
/// Σ u² is multiplied by s² and the learning rate by s; with a quantised first moment s enters m instead (m takes (1 − β1)·s·g, and
/// u, Σ u² and lr follow from that m), so phase 2 is that of s·g either way; phase 1 reports Σ g² from the row sums.
/// The row, column and partial sums live in this kernel (workspace, not state). With AVX-512F (<see cref="WideCpu.Enabled"/>) the
/// rows of phase 1, of the plain update and of update clipping's Σ u², and runs of whole quantised blocks inside one row, take
/// <see cref="WideCpu"/>'s 16-lane bodies, which give the same floats, codes and sums as the paths here; the row bodies prefetch
/// g (and p) <see cref="CpuTuning.FactoredPrefetch"/> floats ahead of the kernel's <see cref="Tuning"/>, across row ends
/// (docs/benchmarks.md). Where <see cref="Vector{T}"/> is itself 16 wide, phase 1 and update clipping's Σ u² keep its loops (their
/// sums are formed in its lanes) and only the update takes the wide body.
/// </remarks>
internal sealed class FactoredCpuKernel : CpuTensorKernel
{
    private readonly int _rows, _cols, _rowsPerTile, _tiles;
    private readonly float[] _rowSums, _colSums, _colPartials;
    private readonly TileKernel _accumulate, _apply, _squares;
    private readonly double[] _tileSquares;   // update clipping: Σ u² per tile
    private readonly float _clip;             // update clipping threshold d (0: off)
    private readonly double _schedule;        // β2 schedule exponent c (0: off): β̂2 = 1 − t^−c, no bias correction
    private float _invSqrtBias = 1f;          // this step's isb2 (1 under the schedule)
    private float _rowScale;   // 1 / mean(R) of this step's phase 2 (0 when mean(R) is 0)
    private float _updateScale = 1f;   // 1 / max(1, RMS(u) / d) of this step (1 without clipping)

    // Quantised first moment (plan.IsQuantized): the codes (state, owned by the optimizer), the blocks and their tiles.
    private readonly byte[] _codes;
    private readonly bool _quantized, _fourBit, _stochastic;
    private readonly int _block, _levels, _blocksPerTile, _blockTiles;
    private readonly ulong _streamKey;
    private readonly TileKernel _quantApply, _quantSquares;

    /// <summary>Update clipping: the last applied step's Σ u² over the tensor, before gradient-norm clipping's s² (0 without clipping).</summary>
    internal double UpdateSquares { get; private set; }

    /// <summary>The most row tiles of phase 1 (each keeps C column partials).</summary>
    internal const int MaxRowTiles = 64;

    /// <summary>Floats of workspace this kernel keeps: R row sums, C column sums and the tiles' C column partials each.</summary>
    internal long WorkspaceFloats => _rowSums.Length + _colSums.Length + _colPartials.LongLength;

    /// <summary>The CPU tuning whose factored prefetch distance the AVX-512 row bodies use (checked when the kernel is built).</summary>
    public CpuTuning Tuning { get; }

    public FactoredCpuKernel(TensorPlan plan, OptimizerSettings settings, byte[]? codes = null, CpuTuning? tuning = null) : base(plan, settings)
    {
        if (!plan.IsFactored || (plan.HasFirstMoment && !plan.IsQuantized))
            throw new ArgumentException($"Tensor '{plan.Name}' is not a factored tensor without a first moment or with a quantised one.", nameof(plan));
        _quantized = plan.IsQuantized;
        _codes = codes ?? [];
        if (_quantized)
        {
            if (_codes.Length != plan.FirstMomentCodeBytes)
                throw new ArgumentException($"Tensor '{plan.Name}': {_codes.Length} bytes of first-moment codes, expected {plan.FirstMomentCodeBytes}.", nameof(codes));
            _fourBit = plan.FirstMoment == FirstMomentStorage.Quantized4;
            _block = plan.QuantizationBlock;
            _levels = plan.QuantizationLevels;
            _stochastic = settings.StochasticRounding;
            _streamKey = BlockQuantizer.StreamKey(settings.Seed, plan.Name);
            _blocksPerTile = Math.Max(1, KernelTiles.ElementTile / _block);
            _blockTiles = KernelTiles.Tiles(plan.QuantizedBlocks, _blocksPerTile);
        }
        _quantApply = QuantizedApplyTile;
        _quantSquares = QuantizedSquaresTile;
        _rows = plan.FactorRows;
        _cols = plan.FactorColumns;
        // Whole rows of about ElementTile entries per tile, but at most MaxRowTiles tiles: each tile keeps C column partials, so
        // the workspace is at most MaxRowTiles·C floats (not R·C for a wide matrix). From the shape only: deterministic.
        _rowsPerTile = Math.Max(Math.Max(1, KernelTiles.ElementTile / _cols), (int)(((long)_rows + MaxRowTiles - 1) / MaxRowTiles));
        _tiles = KernelTiles.Tiles(_rows, _rowsPerTile);
        _rowSums = new float[_rows];
        _colSums = new float[_cols];
        _colPartials = new float[(long)_tiles * _cols];
        Tuning = tuning ?? CpuTuning.Current;
        Tuning.Validate();
        (_accumulate, _apply, _squares) = Tuning.FactoredPrefetch switch
        {
            0 => RowKernels<Ahead0>(),
            64 => RowKernels<Ahead64>(),
            128 => RowKernels<Ahead128>(),
            256 => RowKernels<Ahead256>(),
            512 => RowKernels<Ahead512>(),
            1024 => RowKernels<Ahead1024>(),
            _ => throw new ArgumentException($"CPU tuning '{Tuning.Name}': factored={Tuning.FactoredPrefetch} has no compiled copy."),
        };
        _clip = (float)settings.UpdateClipping;
        _schedule = settings.Beta2Schedule;
        _tileSquares = new double[_clip > 0 ? Math.Max(_tiles, _blockTiles) : 0];
    }

    public override bool Accumulate(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
    {
        bool finite = TileRunner.Run(_tiles, threads, _accumulate, p, g, m, v, sumM, sumV, s);
        // Column sums: the tiles' partials in tile order (deterministic), C·tiles additions.
        Array.Clear(_colSums);
        for (int tile = 0; tile < _tiles; tile++) Add(_colSums, _colPartials.AsSpan(tile * _cols, _cols));
        foreach (float x in _colSums) finite &= float.IsFinite(x);
        if (SumsSquares && finite) GradientSquares = GradientNorm.Sum(_rowSums);   // gradient-norm clipping: Σ g² from the row sums
        return finite;
    }

    public override void Apply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
    {
        // The EMAs of the row and column means, rows first in v, and 1 / mean(R).
        Span<float> rowEma = v[.._rows], colEma = v.Slice(_rows, _cols);
        float beta2 = K.Beta2, oneMinusBeta2 = K.OneMinusBeta2, invCols = 1f / _cols, invRows = 1f / _rows;
        _invSqrtBias = s.InvSqrtBiasCorrection2;
        if (_schedule > 0)
        {
            double oneMinus = Math.Pow(s.Step, -_schedule);   // 1 − β̂2_t, formed in double, rounded once
            beta2 = (float)(1.0 - oneMinus);
            oneMinusBeta2 = (float)oneMinus;
            _invSqrtBias = 1f;
        }
        oneMinusBeta2 *= s.GradientScale * s.GradientScale;   // gradient-norm clipping: the EMAs see (s·s)·g² (exact for s = 1)
        double total = 0;
        for (int r = 0; r < _rows; r++)
        {
            rowEma[r] = beta2 * rowEma[r] + oneMinusBeta2 * (_rowSums[r] * invCols);
            total += rowEma[r];
        }
        for (int c = 0; c < _cols; c++) colEma[c] = beta2 * colEma[c] + oneMinusBeta2 * (_colSums[c] * invRows);
        double mean = total / _rows;
        // 1 / mean(R), clamped to float.MaxValue: below mean(R) ≈ 2.9e-39 it would overflow to +∞ and a row whose EMA is 0 would
        // give 0·∞ = NaN. There every v̂ is that small, so √v̂ ≪ ε and the clamp changes no update that matters.
        _rowScale = mean > 0 ? (float)Math.Min(1.0 / mean, float.MaxValue) : 0f;
        _updateScale = 1f;
        if (_quantized)
        {
            QuantizedApply(threads, p, g, m, v, sumM, sumV, s);
            return;
        }
        if (_clip > 0)
        {
            // RMS(u) of the normalised update u = g / (√v̂·isb2 + ε): a pass of its own, in tiles, summed in tile order.
            TileRunner.Run(_tiles, threads, _squares, p, g, m, v, sumM, sumV, s);
            // u of s·g (gradient-norm clipping; exact for s = 1).
            SetUpdateScale(_tiles, (double)s.GradientScale * s.GradientScale);
        }
        TileRunner.Run(_tiles, threads, _apply, p, g, m, v, sumM, sumV, s);
    }

    /// <summary>The tile kernels of the three row loops with the row bodies' prefetch distance as a type (a JIT-time constant).</summary>
    private (TileKernel Accumulate, TileKernel Apply, TileKernel Squares) RowKernels<TAhead>() where TAhead : struct, IPrefetchDistance
        => (AccumulateTile<TAhead>, ApplyTile<TAhead>, SquaresTile<TAhead>);

    private bool AccumulateTile<TAhead>(int tile, in TileBuffers buf, in StepScalars s) where TAhead : struct, IPrefetchDistance
    {
        int r0 = tile * _rowsPerTile, r1 = Math.Min(r0 + _rowsPerTile, _rows);
        var partial = _colPartials.AsSpan(tile * _cols, _cols);
        partial.Clear();
        var g = buf.Gradient;
        bool finite = true;
        for (int r = r0; r < r1; r++)
        {
            float sum = SquaresInto<TAhead>(partial, g[(r * _cols)..]);
            _rowSums[r] = sum;
            finite &= float.IsFinite(sum);
        }
        return finite;
    }

    private bool ApplyTile<TAhead>(int tile, in TileBuffers buf, in StepScalars s) where TAhead : struct, IPrefetchDistance
    {
        int r0 = tile * _rowsPerTile, r1 = Math.Min(r0 + _rowsPerTile, _rows);
        var colEma = buf.SecondMoment.Slice(_rows, _cols);
        var rowEma = buf.SecondMoment[.._rows];
        float decay = s.Decay, lr = s.LearningRate * s.GradientScale * _updateScale, isb2 = _invSqrtBias, eps = K.Epsilon;
        for (int r = r0; r < r1; r++)
        {
            float a = rowEma[r] * _rowScale;
            // p and g from the row's start (the wide body prefetches inside them, across the row's end), and the row itself.
            var pFrom = buf.Parameters[(r * _cols)..];
            var gFrom = buf.Gradient[(r * _cols)..];
            var p = pFrom[.._cols];
            var g = gFrom[.._cols];
            int c = WideCpu.Enabled ? WideCpu.FactoredRowApply<TAhead>(colEma, gFrom, pFrom, a, isb2, eps, decay, lr) : 0;
            if (Vector.IsHardwareAccelerated && _cols - c >= Vector<float>.Count)
            {
                var va = new Vector<float>(a); var vdecay = new Vector<float>(decay); var vlr = new Vector<float>(lr);
                var visb2 = new Vector<float>(isb2); var veps = new Vector<float>(eps);
                for (; c <= _cols - Vector<float>.Count; c += Vector<float>.Count)
                {
                    var vhat = va * new Vector<float>(colEma[c..]);
                    var den = Vector.SquareRoot(vhat) * visb2 + veps;
                    var pc = new Vector<float>(p[c..]);
                    (pc * vdecay - vlr * new Vector<float>(g[c..]) / den).CopyTo(p[c..]);
                }
            }
            for (; c < _cols; c++)
            {
                float vhat = a * colEma[c];
                p[c] = p[c] * decay - lr * g[c] / (MathF.Sqrt(vhat) * isb2 + eps);
            }
        }
        return true;
    }

    /// <summary>Update clipping: Σ u² of one tile's rows, u = g / (√v̂·isb2 + ε), in double, into its slot.</summary>
    private bool SquaresTile<TAhead>(int tile, in TileBuffers buf, in StepScalars s) where TAhead : struct, IPrefetchDistance
    {
        int r0 = tile * _rowsPerTile, r1 = Math.Min(r0 + _rowsPerTile, _rows);
        var colEma = buf.SecondMoment.Slice(_rows, _cols);
        var rowEma = buf.SecondMoment[.._rows];
        float isb2 = _invSqrtBias, eps = K.Epsilon;
        double sum = 0;
        for (int r = r0; r < r1; r++)
        {
            float a = rowEma[r] * _rowScale;
            var gFrom = buf.Gradient[(r * _cols)..];
            var g = gFrom[.._cols];
            int c = 0;
            if (Vector.IsHardwareAccelerated && _cols >= Vector<float>.Count)
            {
                // u² in float lanes, widened and summed in double lanes; the lanes are added in order after the row.
                var va = new Vector<float>(a); var visb2 = new Vector<float>(isb2); var veps = new Vector<float>(eps);
                var acc0 = Vector<double>.Zero; var acc1 = Vector<double>.Zero;
                if (WideCpu.Enabled && Vector<float>.Count == 8)
                {
                    // AVX-512: 16 entries a vector into the same two accumulators, lane by lane in the same order (the same sum).
                    Vector256<double> lo = default, hi = default;
                    c = WideCpu.FactoredRowSquares<TAhead>(colEma, gFrom, a, isb2, eps, ref lo, ref hi);
                    acc0 = lo.AsVector();
                    acc1 = hi.AsVector();
                }
                for (; c <= _cols - Vector<float>.Count; c += Vector<float>.Count)
                {
                    var u = new Vector<float>(g[c..]) / (Vector.SquareRoot(va * new Vector<float>(colEma[c..])) * visb2 + veps);
                    Vector.Widen(u * u, out var lo, out var hi);
                    acc0 += lo;
                    acc1 += hi;
                }
                var lanes = acc0 + acc1;
                for (int l = 0; l < Vector<double>.Count; l++) sum += lanes[l];
            }
            for (; c < _cols; c++)
            {
                float u = g[c] / (MathF.Sqrt(a * colEma[c]) * isb2 + eps);
                sum += (double)(u * u);
            }
        }
        _tileSquares[tile] = sum;
        return true;
    }

    /// <summary>
    /// Update clipping's scale from the first <paramref name="tiles"/> per-tile Σ u² (added in tile order; recorded in
    /// <see cref="UpdateSquares"/>), times <paramref name="squareScale"/>: 1 / max(1, RMS(u) / d).
    /// </summary>
    private void SetUpdateScale(int tiles, double squareScale)
    {
        double squares = 0;
        for (int t = 0; t < tiles; t++) squares += _tileSquares[t];
        UpdateSquares = squares;
        double rms = Math.Sqrt(squares * squareScale / Plan.Length);
        _updateScale = rms > _clip ? (float)(_clip / rms) : 1f;
    }

    /// <summary>Phase 2 with a quantised first moment: optional RMS(u) pass, then the update and the new codes, in block tiles.</summary>
    private void QuantizedApply(int threads, Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> sumM, Span<float> sumV, in StepScalars s)
    {
        if (_clip > 0)
        {
            TileRunner.Run(_blockTiles, threads, _quantSquares, p, g, m, v, sumM, sumV, s);
            SetUpdateScale(_blockTiles, 1.0);   // s entered m itself: u is already that of s·g
        }
        TileRunner.Run(_blockTiles, threads, _quantApply, p, g, m, v, sumM, sumV, s);
    }

    private bool QuantizedApplyTile(int tile, in TileBuffers buf, in StepScalars s)
    {
        Span<float> mb = stackalloc float[_block];
        double unused = 0;
        int b0 = tile * _blocksPerTile, b1 = Math.Min(b0 + _blocksPerTile, Plan.QuantizedBlocks);
        if (!WideCpu.FitsBlock(_fourBit, _block))
        {
            for (int b = b0; b < b1; b++) QuantizedBlock(b, in buf, in s, mb, write: true, ref unused);
            return true;
        }
        // AVX-512: runs of whole blocks inside one row go to the fused wide pass (the same floats and codes as QuantizedBlock);
        // a block that crosses a row or is the tensor's partial last one takes QuantizedBlock.
        var ema = buf.SecondMoment;
        var colEma = ema.Slice(_rows, _cols);
        uint wa = 0, wc = 0;
        if (_stochastic) BlockQuantizer.StepWords(_streamKey, s.Step, out wa, out wc);
        float lr = s.LearningRate * _updateScale, oneMinusBeta1 = K.OneMinusBeta1 * s.GradientScale;
        for (int b = b0; b < b1;)
        {
            long e0 = (long)b * _block;
            int r = (int)(e0 / _cols), c0 = (int)(e0 - (long)r * _cols);
            // Whole blocks from b that end inside row r (and before the tensor's end).
            int run = Math.Min(b1 - b, (_cols - c0) / _block);
            if (run > 0 && (long)(b + run) * _block > Plan.Length) run = (int)((Plan.Length - e0) / _block);
            if (run <= 0)
            {
                QuantizedBlock(b, in buf, in s, mb, write: true, ref unused);
                b++;
                continue;
            }
            var k = new WideCpu.QuantizedCoefficients(K.Beta1, oneMinusBeta1, ema[r] * _rowScale, _invSqrtBias, K.Epsilon,
                                                      s.InvBiasCorrection1, s.Decay, lr);
            WideCpu.QuantizedRun(_codes, buf.FirstMoment, _fourBit, _block, _levels, b, run, buf.Gradient, buf.Parameters, colEma, c0, in k,
                                 _stochastic, wa, wc, mb);
            b += run;
        }
        return true;
    }

    private bool QuantizedSquaresTile(int tile, in TileBuffers buf, in StepScalars s)
    {
        Span<float> mb = stackalloc float[_block];
        double squares = 0;
        int b0 = tile * _blocksPerTile, b1 = Math.Min(b0 + _blocksPerTile, Plan.QuantizedBlocks);
        for (int b = b0; b < b1; b++) QuantizedBlock(b, in buf, in s, mb, write: false, ref squares);
        _tileSquares[tile] = squares;
        return true;
    }

    /// <summary>
    /// One block of a quantised first moment: m ← β1·deq(q) + (1 − β1)·g in float, u = m/bc1 / (√v̂·isb2 + ε) per row segment;
    /// with <paramref name="write"/> p ← p·decay − lr·u and the block stored again (<see cref="BlockQuantizer.Quantize(ReadOnlySpan{float}, float, Span{byte}, bool, int, int, int, bool, ulong, int)"/>),
    /// otherwise only Σ u² (in double) into <paramref name="squares"/>.
    /// </summary>
    private void QuantizedBlock(int block, in TileBuffers buf, in StepScalars s, Span<float> mb, bool write, ref double squares)
    {
        int e0 = block * _block, len = Math.Min(_block, Plan.Length - e0);
        var m = mb[..len];
        var scales = buf.FirstMoment;
        // m ← β1·deq(q) + (1 − β1)·s·g in one pass (the same floats as dequantising, then forming the EMA); gradient-norm clipping's
        // s enters through m's coefficient (exact for s = 1).
        BlockQuantizer.DequantizeEma(_codes, _fourBit, _block, e0, scales[block], _levels, buf.Gradient.Slice(e0, len), K.Beta1,
                                     K.OneMinusBeta1 * s.GradientScale, m);

        var colEma = buf.SecondMoment.Slice(_rows, _cols);
        var rowEma = buf.SecondMoment[.._rows];
        float decay = s.Decay, lr = s.LearningRate * _updateScale, isb2 = _invSqrtBias, eps = K.Epsilon, ibc1 = s.InvBiasCorrection1;
        var p = buf.Parameters;
        var vmax = Vector<float>.Zero;   // max |m| of the block, formed in the update pass (for the store)
        float absmax = 0f;
        for (int e = e0; e < e0 + len;)
        {
            int r = e / _cols, c0 = e - r * _cols, n = Math.Min(_cols - c0, e0 + len - e);
            float a = rowEma[r] * _rowScale;
            var mSeg = m.Slice(e - e0, n);
            var col = colEma.Slice(c0, n);
            var pSeg = p.Slice(e, n);
            int c = 0;
            if (write && Vector.IsHardwareAccelerated)
            {
                var va = new Vector<float>(a); var vdecay = new Vector<float>(decay); var vlr = new Vector<float>(lr);
                var visb2 = new Vector<float>(isb2); var veps = new Vector<float>(eps); var vibc1 = new Vector<float>(ibc1);
                for (; c <= n - Vector<float>.Count; c += Vector<float>.Count)
                {
                    var den = Vector.SquareRoot(va * new Vector<float>(col[c..])) * visb2 + veps;
                    var mv = new Vector<float>(mSeg[c..]);
                    vmax = Vector.Max(vmax, Vector.Abs(mv));
                    var u = mv * vibc1 / den;
                    (new Vector<float>(pSeg[c..]) * vdecay - vlr * u).CopyTo(pSeg[c..]);
                }
            }
            for (; c < n; c++)
            {
                float u = mSeg[c] * ibc1 / (MathF.Sqrt(a * col[c]) * isb2 + eps);
                if (write)
                {
                    pSeg[c] = pSeg[c] * decay - lr * u;
                    absmax = MathF.Max(absmax, MathF.Abs(mSeg[c]));
                }
                else squares += (double)(u * u);
            }
            e += n;
        }
        if (write)
        {
            for (int l = 0; l < Vector<float>.Count; l++) absmax = MathF.Max(absmax, vmax[l]);
            scales[block] = BlockQuantizer.Quantize(m, absmax, _codes, _fourBit, _block, e0, _levels, _stochastic, _streamKey, s.Step);
        }
    }

    /// <summary>
    /// Adds g² of one row into <paramref name="columns"/> and returns the row's Σ g² (lanes, then lanes in order); the row is the
    /// first <paramref name="columns"/>.Length entries of <paramref name="fromRow"/>, the gradient from the row's start on (the
    /// wide body prefetches inside it, across the row's end).
    /// </summary>
    private static float SquaresInto<TAhead>(Span<float> columns, ReadOnlySpan<float> fromRow) where TAhead : struct, IPrefetchDistance
    {
        var row = fromRow[..columns.Length];
        int c = 0;
        float sum = 0f;
        if (Vector.IsHardwareAccelerated && row.Length >= Vector<float>.Count)
        {
            var acc = Vector<float>.Zero;
            if (WideCpu.Enabled && Vector<float>.Count == 8)
            {
                var wide = Vector256<float>.Zero;
                c = WideCpu.FactoredRowSquaresInto<TAhead>(columns, fromRow, ref wide);
                acc = wide.AsVector();
            }
            for (; c <= row.Length - Vector<float>.Count; c += Vector<float>.Count)
            {
                var x = new Vector<float>(row[c..]);
                var sq = x * x;
                acc += sq;
                (new Vector<float>(columns[c..]) + sq).CopyTo(columns[c..]);
            }
            for (int l = 0; l < Vector<float>.Count; l++) sum += acc[l];
        }
        for (; c < row.Length; c++)
        {
            float sq = row[c] * row[c];
            sum += sq;
            columns[c] += sq;
        }
        return sum;
    }

    private static void Add(Span<float> into, ReadOnlySpan<float> values)
    {
        int c = 0;
        if (Vector.IsHardwareAccelerated)
            for (; c <= into.Length - Vector<float>.Count; c += Vector<float>.Count)
                (new Vector<float>(into[c..]) + new Vector<float>(values[c..])).CopyTo(into[c..]);
        for (; c < into.Length; c++) into[c] += values[c];
    }
}
