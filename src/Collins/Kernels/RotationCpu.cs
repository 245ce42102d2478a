using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Collins.Kernels;

/// <summary>
/// Vectorised CPU primitives for the Count-Sketch kernels the source generator emits. Generated
/// code calls them with literal arguments (rotation ρ_r, sign σ_r, row offsets, β1, β2, ε), one
/// call per row of the Rotation view, so that a person reading the generated file sees the whole
/// hash of a tensor spelled out.
/// </summary>
/// <remarks>
/// Rotation layout recap: a tensor of d entries is viewed as rows of k entries (the last row may be
/// shorter); entry i = r·k + c lands in bucket (c + ρ_r) mod k with sign σ_r. For a bucket range
/// [b0, b1) the entries of row r that land there form at most two contiguous column segments (the
/// rotation wraps once), which is what makes the kernels streaming and vectorisable.
/// Every loop here runs in a fixed order: results never depend on the number of threads.
/// </remarks>
public static unsafe class RotationCpu
{
    /// <summary>
    /// Phase 1 for one row of the Rotation view restricted to buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>):
    /// sumM[b] (+)= σ·g[i] and sumV[b] (+)= g[i]² for every entry i of the row landing in b.
    /// With <paramref name="first"/> the sums are assigned (row 0 covers every bucket), otherwise added.
    /// <paramref name="sumM"/> is empty when β1 = 0.
    /// </summary>
    public static void AccumulateRow(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                     int bucketStart, int bucketEnd, int buckets,
                                     int rowOffset, int rowLength, int rotation, float sign, bool first)
        => AccumulateRow(gradient, sumM, sumV, 0, bucketStart, bucketEnd, buckets, rowOffset, rowLength, rotation, sign, first);

    /// <summary>As the public overload, with the sums of bucket b at index b − <paramref name="bucketBase"/>.</summary>
    private static void AccumulateRow(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV, int bucketBase,
                                      int bucketStart, int bucketEnd, int buckets,
                                      int rowOffset, int rowLength, int rotation, float sign, bool first)
    {
        bool hasM = sumM.Length != 0;
        // Segment A: buckets b < ρ hold columns c = b + k − ρ.
        int bs = bucketStart, be = Math.Min(bucketEnd, rotation);
        if (bs < be) AccumulateSegment(gradient, sumM, sumV, bs - bucketBase, bs + buckets - rotation, be - bs, rowOffset, rowLength, sign, first, hasM);
        // Segment B: buckets b ≥ ρ hold columns c = b − ρ.
        bs = Math.Max(bucketStart, rotation); be = bucketEnd;
        if (bs < be) AccumulateSegment(gradient, sumM, sumV, bs - bucketBase, bs - rotation, be - bs, rowOffset, rowLength, sign, first, hasM);
    }

    /// <summary>Floats ahead in each row that phase 2 (<c>ApplyTile</c>) software-prefetches (a prefetch never faults, so an
    /// address that a moving GC made stale costs nothing but the hint).</summary>
    private const int PrefetchAhead = 256;

    /// <summary>The same for phase 1 (d = 64M, Ratio 32: 128 ≈ 256 ≈ 512 within noise, 1024 slower).</summary>
    private const int AccumulatePrefetchAhead = 128;

    /// <summary>
    /// Tensors of at least this many entries get <see cref="AccumulateMomentsTile(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float}, int, int, int, int, ReadOnlySpan{int}, ReadOnlySpan{int}, float, float, float, float, float, bool, in StepScalars)"/>'s
    /// outputs with non-temporal stores (<see cref="RotationStreaming.MinLength"/>; below it write-allocating stores, which keep a
    /// workspace the gradient pass has not flushed in the cache). A field, not a constant, so that tests can reach the streaming path
    /// with small tensors (the stored values are the same either way).
    /// </summary>
    internal static int NonTemporalMinLength = RotationStreaming.MinLength;

    /// <summary>Buckets that the moment kernels stage on the stack at a time (8 KiB per array, in L1).</summary>
    internal const int StageBuckets = 2048;

    /// <summary>
    /// Phase 1 of the sums-then-update Rotation step (tensors below <see cref="RotationStreaming.MinLength"/> entries; phase 2 is
    /// <see cref="UpdateBuckets"/> or <see cref="UpdateBucketsRotationMean"/>, then <see cref="ApplyTile"/>) for buckets
    /// [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>) of the Rotation view, all rows at once:
    /// for each vector of 16 buckets the sums are kept in registers while the rows are read in order 0..R−1 (row r at
    /// column (b − ρ_r) mod k; a vector that straddles row r's wrap point, or the end of the ragged last row, is filled lane by
    /// lane, absent entries as 0), then stored once. sumM[b] = Σ_r σ_r·g, sumV[b] = Σ_r g² with the same operations in the
    /// same order as <see cref="AccumulateRow(ReadOnlySpan{float}, Span{float}, Span{float}, int, int, int, int, int, int, float, bool)"/> row after row, so the result never depends on the tiling or the thread count.
    /// <paramref name="sumM"/> is empty when β1 = 0. Returns false when a sumV of the range is not finite.
    /// <paramref name="gradient"/> holds (R − 1)·k + <paramref name="lastRowLength"/> floats; <paramref name="rotations"/> are ρ_r
    /// (0 ≤ ρ_r &lt; k) and <paramref name="signs"/> σ_r = ±1 for r = 0..R−1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool AccumulateTile(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                      int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                      ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs)
    {
        int rows = rotations.Length;
        bool hasM = sumM.Length != 0;
        if (rows == 0 || signs.Length != rows || (uint)bucketStart > (uint)bucketEnd || bucketEnd > buckets
            || sumV.Length < bucketEnd || (hasM && sumM.Length < bucketEnd)
            || lastRowLength <= 0 || lastRowLength > buckets || gradient.Length != (long)(rows - 1) * buckets + lastRowLength)
            throw new ArgumentException("Rotation tile arguments disagree with the buffers.");
        if (!Vector512.IsHardwareAccelerated)
        {
            for (int r = 0; r < rows; r++)
                AccumulateRow(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, r * buckets, r == rows - 1 ? lastRowLength : buckets,
                              rotations[r], signs[r] > 0 ? 1f : -1f, r == 0);
            return AllFinite(sumV.Slice(bucketStart, bucketEnd - bucketStart));
        }
        const int W = 16; // Vector512<float>.Count
        ref float rg = ref MemoryMarshal.GetReference(gradient);
        ref float rm = ref MemoryMarshal.GetReference(sumM);
        ref float rv = ref MemoryMarshal.GetReference(sumV);
        ref int rrho = ref MemoryMarshal.GetReference(rotations);
        ref int rsig = ref MemoryMarshal.GetReference(signs);
        Span<float> lanes = stackalloc float[W];
        ref float rl = ref MemoryMarshal.GetReference(lanes);
        var check = Vector512<float>.Zero;
        int b = bucketStart;
        for (; b <= bucketEnd - W; b += W)
        {
            Vector512<float> sm = default, sv = default;
            for (int r = 0; r < rows; r++)
            {
                int rho = Unsafe.Add(ref rrho, r);
                int c = b - rho;
                if (c < 0) c += buckets;
                int len = r == rows - 1 ? lastRowLength : buckets;
                nuint rowOffset = (nuint)r * (nuint)buckets;
                Vector512<float> x;
                if (c + W <= len)
                {
                    x = Vector512.LoadUnsafe(ref rg, rowOffset + (nuint)c);
                    if (Sse.IsSupported && c + AccumulatePrefetchAhead < len)
                        Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rg, rowOffset + (nuint)(c + AccumulatePrefetchAhead))));
                }
                else
                {
                    // wrap point or ragged end inside this vector: lane by lane
                    for (int j = 0; j < W; j++)
                    {
                        int cj = b + j - rho;
                        if (cj < 0) cj += buckets;
                        Unsafe.Add(ref rl, j) = cj < len ? Unsafe.Add(ref rg, rowOffset + (nuint)cj) : 0f;
                    }
                    x = Vector512.LoadUnsafe(ref rl);
                }
                if (r == 0)
                {
                    if (hasM) sm = Vector512.Create(Unsafe.Add(ref rsig, r) > 0 ? 1f : -1f) * x;
                    sv = x * x;
                }
                else
                {
                    if (hasM) sm += Vector512.Create(Unsafe.Add(ref rsig, r) > 0 ? 1f : -1f) * x;
                    sv += x * x;
                }
            }
            if (hasM) sm.StoreUnsafe(ref rm, (nuint)b);
            sv.StoreUnsafe(ref rv, (nuint)b);
            check += sv * Vector512<float>.Zero;
        }
        for (; b < bucketEnd; b++)
        {
            float sm = 0f, sv = 0f;
            for (int r = 0; r < rows; r++)
            {
                int c = b - Unsafe.Add(ref rrho, r);
                if (c < 0) c += buckets;
                int len = r == rows - 1 ? lastRowLength : buckets;
                float x = c < len ? Unsafe.Add(ref rg, (nuint)r * (nuint)buckets + (nuint)c) : 0f;
                float sx = (Unsafe.Add(ref rsig, r) > 0 ? 1f : -1f) * x;
                if (r == 0) { sm = sx; sv = x * x; } else { sm += sx; sv += x * x; }
            }
            if (hasM) Unsafe.Add(ref rm, b) = sm;
            Unsafe.Add(ref rv, b) = sv;
            if (!float.IsFinite(sv)) check = Vector512.Create(float.NaN);
        }
        return Vector512.EqualsAll(check, check);
    }

    /// <summary>
    /// Phase 1 of the streaming Rotation step (tensors of at least <see cref="RotationStreaming.MinLength"/> entries) for buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>): the bucket sums
    /// Σ_r σ_r·g and Σ_r g² (rows read in order 0..R−1, row r at column (b − ρ_r) mod k, 16 buckets at a time in registers), then,
    /// still in registers, the step's new moments m' = β1·m + (1−β1)·Σσg, v' = β2·v + (1−β2)·Σg² and the bucket's update coefficient
    /// q = lr·m'·invBc1 / (√v̂·invSqrtBc2 + ε) (β1 ≠ 0) or q = lr / (√v̂·invSqrtBc2 + ε) (β1 = 0), with v̂ = v' (SecondMoment = Sum) or
    /// v' divided by the bucket's occupancy (Mean: R entries when the bucket's column exists in the ragged last row, R − 1 otherwise).
    /// m', v' and q go to the workspace (<paramref name="nextFirstMoment"/>, <paramref name="nextSecondMoment"/>,
    /// <paramref name="coefficient"/>), with non-temporal stores where the CPU has AVX-512 (nothing reads them before phase 2).
    /// The state (<paramref name="firstMoment"/>, <paramref name="secondMoment"/>) is only read, so a step whose gradient turns out
    /// non-finite changes nothing; a completed step makes m', v' the state (<see cref="SketchedOptimizerBase"/>.CommitNextMoments).
    /// Returns false when a Σg² of the range is not finite.
    /// The arithmetic is that of <see cref="UpdateBuckets"/> operation for operation, and every bucket gets the same operations in the
    /// same order whatever the range, the tiling or the thread count. <paramref name="firstMoment"/> and <paramref name="nextFirstMoment"/>
    /// are empty when β1 = 0; <paramref name="gradient"/> holds (R − 1)·k + <paramref name="lastRowLength"/> floats;
    /// <paramref name="rotations"/> are ρ_r (0 ≤ ρ_r &lt; k) and <paramref name="signs"/> σ_r = ±1 for r = 0..R−1.
    /// </summary>
    public static bool AccumulateMomentsTile(ReadOnlySpan<float> gradient, ReadOnlySpan<float> firstMoment, ReadOnlySpan<float> secondMoment,
                                             Span<float> nextFirstMoment, Span<float> nextSecondMoment, Span<float> coefficient,
                                             int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                             ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs,
                                             float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsilon,
                                             bool meanSecondMoment, in StepScalars scalars)
        => AccumulateMomentsTile(gradient, firstMoment, secondMoment, nextFirstMoment, nextSecondMoment, coefficient, bucketStart, bucketEnd,
                                 buckets, lastRowLength, rotations, signs, beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon,
                                 meanSecondMoment, scalars, vectorize: true);

    /// <summary>As the public overload; <paramref name="vectorize"/> = false runs the portable row-by-row path (tests compare the two bit for bit).</summary>
    [SkipLocalsInit] // the stage buffers are written before they are read; zeroing them cost 24 KiB of stores per tile
    internal static bool AccumulateMomentsTile(ReadOnlySpan<float> gradient, ReadOnlySpan<float> firstMoment, ReadOnlySpan<float> secondMoment,
                                               Span<float> nextFirstMoment, Span<float> nextSecondMoment, Span<float> coefficient,
                                               int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                               ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs,
                                               float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsilon,
                                               bool meanSecondMoment, in StepScalars scalars, bool vectorize)
    {
        int rows = rotations.Length;
        bool hasM = firstMoment.Length != 0;
        if (rows == 0 || signs.Length != rows || (uint)bucketStart > (uint)bucketEnd || bucketEnd > buckets
            || secondMoment.Length < bucketEnd || nextSecondMoment.Length < bucketEnd || coefficient.Length < bucketEnd
            || nextFirstMoment.Length != firstMoment.Length || (hasM && firstMoment.Length < bucketEnd)
            || lastRowLength <= 0 || lastRowLength > buckets || gradient.Length != (long)(rows - 1) * buckets + lastRowLength)
            throw new ArgumentException("Rotation tile arguments disagree with the buffers.");
        if (nextSecondMoment.Overlaps(secondMoment) || nextSecondMoment.Overlaps(firstMoment) || nextFirstMoment.Overlaps(secondMoment)
            || nextFirstMoment.Overlaps(firstMoment) || nextFirstMoment.Overlaps(nextSecondMoment)
            || coefficient.Overlaps(firstMoment) || coefficient.Overlaps(secondMoment) || coefficient.Overlaps(nextFirstMoment) || coefficient.Overlaps(nextSecondMoment))
            throw new ArgumentException("The new moments and the coefficients must not share memory with each other or with the current moments.");
        var math = new MomentMath(beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon, scalars, hasM,
                                  meanSecondMoment, rows, buckets, rotations[rows - 1], lastRowLength);
        bool stream = vectorize && Avx512F.IsSupported && gradient.Length >= NonTemporalMinLength;
        if (vectorize && Vector512.IsHardwareAccelerated && Avx512F.IsSupported && bucketEnd > bucketStart)
        {
            fixed (float* pm = nextFirstMoment)
            fixed (float* pv = nextSecondMoment)
            fixed (float* pq = coefficient)
            {
                // The usual case (the optimizers' workspaces are AlignedFloats and tiles start on multiples of 16 buckets): every
                // 16-bucket vector of the three outputs is one whole cache line, written straight from registers, non-temporally.
                if ((!hasM || IsLineAligned(pm + bucketStart)) && IsLineAligned(pv + bucketStart) && IsLineAligned(pq + bucketStart))
                {
                    bool ok = SketchRangeVector512(gradient, hasM ? firstMoment.Slice(bucketStart) : default, secondMoment.Slice(bucketStart),
                                                   hasM ? nextFirstMoment.Slice(bucketStart) : default, nextSecondMoment.Slice(bucketStart),
                                                   coefficient.Slice(bucketStart), bucketStart, bucketEnd, buckets, lastRowLength,
                                                   rotations, signs, in math, nonTemporal: stream);
                    if (stream) Sse.StoreFence(); // non-temporal stores are weakly ordered: fence them before phase 2 reads them on another thread
                    return ok;
                }
            }
        }
        Span<float> stageM = stackalloc float[hasM ? StageBuckets : 0];
        Span<float> stageV = stackalloc float[StageBuckets];
        Span<float> stageQ = stackalloc float[StageBuckets];
        bool finite = true, streamed = false;
        for (int c0 = bucketStart; c0 < bucketEnd; c0 += StageBuckets)
        {
            int n = Math.Min(StageBuckets, bucketEnd - c0);
            var sm = stageM.Slice(0, hasM ? n : 0);
            var sv = stageV.Slice(0, n);
            var sq = stageQ.Slice(0, n);
            var m = hasM ? firstMoment.Slice(c0, n) : default;
            var v = secondMoment.Slice(c0, n);
            finite &= vectorize && Vector512.IsHardwareAccelerated
                ? SketchRangeVector512(gradient, m, v, sm, sv, sq, c0, c0 + n, buckets, lastRowLength, rotations, signs, in math, nonTemporal: false)
                : SketchRangePortable(gradient, m, v, sm, sv, sq, c0, c0 + n, buckets, lastRowLength, rotations, signs, in math);
            if (hasM) streamed |= StreamTo(sm, nextFirstMoment.Slice(c0, n), stream);
            streamed |= StreamTo(sv, nextSecondMoment.Slice(c0, n), stream);
            streamed |= StreamTo(sq, coefficient.Slice(c0, n), stream);
        }
        // Non-temporal stores are weakly ordered: fence them before another thread (phase 2) reads the workspace.
        if (streamed) Sse.StoreFence();
        return finite;
    }

    /// <summary>The per-bucket arithmetic of phase 1 after the sums, vector and scalar, in <see cref="UpdateBuckets"/>'s operation order.</summary>
    private readonly struct MomentMath(float beta1, float c1, float beta2, float c2, float epsilon, in StepScalars s, bool hasM,
                                       bool mean, int rows, int buckets, int lastRotation, int lastRowLength)
    {
        private readonly float _lr = s.LearningRate, _ib1 = s.InvBiasCorrection1, _isb2 = s.InvSqrtBiasCorrection2;
        public bool HasM => hasM;

        /// <summary>Occupancy of bucket b in the Rotation view (Mean): R when its column exists in the ragged last row, else R − 1.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private float Occupancy(int b)
        {
            int c = b - lastRotation;
            if (c < 0) c += buckets;
            return c < lastRowLength ? rows : rows - 1;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private Vector512<float> Occupancy16(int b)
        {
            var c = Vector512.Create(b - lastRotation) + Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            c = Vector512.ConditionalSelect(Vector512.LessThan(c, Vector512<int>.Zero), c + Vector512.Create(buckets), c);
            return Vector512.ConvertToSingle(Vector512.ConditionalSelect(Vector512.LessThan(c, Vector512.Create(lastRowLength)),
                                                                         Vector512.Create(rows), Vector512.Create(rows - 1)));
        }

        /// <summary>Buckets b..b+15: (Σσg, Σg², m, v) → (m', v', q).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Finish(Vector512<float> sumM, Vector512<float> sumV, Vector512<float> m, Vector512<float> v, int b,
                           out Vector512<float> nextM, out Vector512<float> nextV, out Vector512<float> q)
        {
            nextV = Vector512.Create(beta2) * v + Vector512.Create(c2) * sumV;
            var vhat = mean ? nextV / Occupancy16(b) : nextV;
            var den = Vector512.Sqrt(vhat) * Vector512.Create(_isb2) + Vector512.Create(epsilon);
            if (hasM)
            {
                nextM = Vector512.Create(beta1) * m + Vector512.Create(c1) * sumM;
                q = Vector512.Create(_lr) * (nextM * Vector512.Create(_ib1)) / den;
            }
            else
            {
                nextM = default;
                q = Vector512.Create(_lr) / den;
            }
        }

        /// <summary>Bucket b: (Σσg, Σg², m, v) → (m', v', q).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Finish(float sumM, float sumV, float m, float v, int b, out float nextM, out float nextV, out float q)
        {
            nextV = beta2 * v + c2 * sumV;
            float vhat = mean ? nextV / Occupancy(b) : nextV;
            float den = MathF.Sqrt(vhat) * _isb2 + epsilon;
            if (hasM)
            {
                nextM = beta1 * m + c1 * sumM;
                q = _lr * (nextM * _ib1) / den;
            }
            else
            {
                nextM = 0f;
                q = _lr / den;
            }
        }
    }

    private static bool IsLineAligned(float* p) => ((nuint)p & 63) == 0;

    /// <summary>
    /// Copies <paramref name="source"/> to <paramref name="destination"/>, with non-temporal 64-byte stores for the aligned middle when
    /// AVX-512 is there (they skip the read-for-ownership of lines that are entirely overwritten). Returns true when it streamed.
    /// </summary>
    private static bool StreamTo(ReadOnlySpan<float> source, Span<float> destination, bool stream)
    {
        int n = source.Length;
        if (!stream || n < 64) { source.CopyTo(destination); return false; }
        fixed (float* src = source)
        fixed (float* dst = destination)
        {
            int j = 0;
            while (j < n && ((nuint)(dst + j) & 63) != 0) { dst[j] = src[j]; j++; }
            for (; j <= n - 16; j += 16) Avx512F.StoreAlignedNonTemporal(dst + j, Avx512F.LoadVector512(src + j));
            for (; j < n; j++) dst[j] = src[j];
        }
        return true;
    }

    /// <summary>
    /// The portable phase 1 for buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>): the sums row after row with
    /// <see cref="AccumulateRow(ReadOnlySpan{float}, Span{float}, Span{float}, int, int, int, int, int, int, float, bool)"/>'s kernels
    /// into the stage (bucket b at index b − bucketStart), then m', v', q bucket by bucket in place.
    /// </summary>
    private static bool SketchRangePortable(ReadOnlySpan<float> gradient, ReadOnlySpan<float> m, ReadOnlySpan<float> v,
                                            Span<float> stageM, Span<float> stageV, Span<float> stageQ,
                                            int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                            ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs, in MomentMath math)
    {
        int rows = rotations.Length;
        for (int r = 0; r < rows; r++)
            AccumulateRow(gradient, stageM, stageV, bucketStart, bucketStart, bucketEnd, buckets, r * buckets, r == rows - 1 ? lastRowLength : buckets,
                          rotations[r], signs[r] > 0 ? 1f : -1f, r == 0);
        bool finite = AllFinite(stageV);
        for (int j = 0; j < stageV.Length; j++)
        {
            math.Finish(math.HasM ? stageM[j] : 0f, stageV[j], math.HasM ? m[j] : 0f, v[j], bucketStart + j, out float nm, out float nv, out float q);
            if (math.HasM) stageM[j] = nm;
            stageV[j] = nv;
            stageQ[j] = q;
        }
        return finite;
    }

    /// <summary>
    /// The AVX-512 phase 1 for buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>) (stage index b − bucketStart):
    /// for each vector of 16 buckets the sums are kept in registers while the rows are read in order 0..R−1 (a vector that straddles
    /// row r's wrap point, or the end of the ragged last row, is filled lane by lane, absent entries as 0), then m', v', q are formed
    /// in registers and stored once; the same operations in the same order as <see cref="SketchRangePortable"/>. With
    /// <paramref name="nonTemporal"/> the full vectors are stored with non-temporal stores (the outputs must then be pinned and
    /// 64-byte aligned at index 0).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static bool SketchRangeVector512(ReadOnlySpan<float> gradient, ReadOnlySpan<float> m, ReadOnlySpan<float> v,
                                             Span<float> stageM, Span<float> stageV, Span<float> stageQ,
                                             int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                             ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs, in MomentMath math, bool nonTemporal)
    {
        const int W = 16; // Vector512<float>.Count
        int rows = rotations.Length;
        bool hasM = math.HasM;
        ref float rg = ref MemoryMarshal.GetReference(gradient);
        ref float rm = ref MemoryMarshal.GetReference(m);
        ref float rv = ref MemoryMarshal.GetReference(v);
        ref float rsm = ref MemoryMarshal.GetReference(stageM);
        ref float rsv = ref MemoryMarshal.GetReference(stageV);
        ref float rsq = ref MemoryMarshal.GetReference(stageQ);
        ref int rrho = ref MemoryMarshal.GetReference(rotations);
        ref int rsig = ref MemoryMarshal.GetReference(signs);
        Span<float> lanes = stackalloc float[W];
        ref float rl = ref MemoryMarshal.GetReference(lanes);
        var check = Vector512<float>.Zero;
        int b = bucketStart;
        for (; b <= bucketEnd - W; b += W)
        {
            Vector512<float> sm = default, sv = default;
            for (int r = 0; r < rows; r++)
            {
                int rho = Unsafe.Add(ref rrho, r);
                int c = b - rho;
                if (c < 0) c += buckets;
                int len = r == rows - 1 ? lastRowLength : buckets;
                nuint rowOffset = (nuint)r * (nuint)buckets;
                Vector512<float> x;
                if (c + W <= len)
                {
                    x = Vector512.LoadUnsafe(ref rg, rowOffset + (nuint)c);
                    if (Sse.IsSupported && c + AccumulatePrefetchAhead < len)
                        Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rg, rowOffset + (nuint)(c + AccumulatePrefetchAhead))));
                }
                else
                {
                    // wrap point or ragged end inside this vector: lane by lane
                    for (int j = 0; j < W; j++)
                    {
                        int cj = b + j - rho;
                        if (cj < 0) cj += buckets;
                        Unsafe.Add(ref rl, j) = cj < len ? Unsafe.Add(ref rg, rowOffset + (nuint)cj) : 0f;
                    }
                    x = Vector512.LoadUnsafe(ref rl);
                }
                if (r == 0)
                {
                    if (hasM) sm = Vector512.Create(Unsafe.Add(ref rsig, r) > 0 ? 1f : -1f) * x;
                    sv = x * x;
                }
                else
                {
                    if (hasM) sm += Vector512.Create(Unsafe.Add(ref rsig, r) > 0 ? 1f : -1f) * x;
                    sv += x * x;
                }
            }
            check += sv * Vector512<float>.Zero;
            nuint j0 = (nuint)(b - bucketStart);
            math.Finish(sm, sv, hasM ? Vector512.LoadUnsafe(ref rm, j0) : default, Vector512.LoadUnsafe(ref rv, j0), b,
                        out var nm, out var nv, out var q);
            if (nonTemporal)
            {
                if (hasM) Avx512F.StoreAlignedNonTemporal((float*)Unsafe.AsPointer(ref Unsafe.Add(ref rsm, j0)), nm);
                Avx512F.StoreAlignedNonTemporal((float*)Unsafe.AsPointer(ref Unsafe.Add(ref rsv, j0)), nv);
                Avx512F.StoreAlignedNonTemporal((float*)Unsafe.AsPointer(ref Unsafe.Add(ref rsq, j0)), q);
            }
            else
            {
                if (hasM) nm.StoreUnsafe(ref rsm, j0);
                nv.StoreUnsafe(ref rsv, j0);
                q.StoreUnsafe(ref rsq, j0);
            }
        }
        for (; b < bucketEnd; b++)
        {
            float sm = 0f, sv = 0f;
            for (int r = 0; r < rows; r++)
            {
                int c = b - Unsafe.Add(ref rrho, r);
                if (c < 0) c += buckets;
                int len = r == rows - 1 ? lastRowLength : buckets;
                float x = c < len ? Unsafe.Add(ref rg, (nuint)r * (nuint)buckets + (nuint)c) : 0f;
                float sx = (Unsafe.Add(ref rsig, r) > 0 ? 1f : -1f) * x;
                if (r == 0) { sm = sx; sv = x * x; } else { sm += sx; sv += x * x; }
            }
            if (!float.IsFinite(sv)) check = Vector512.Create(float.NaN);
            int j = b - bucketStart;
            math.Finish(sm, sv, hasM ? Unsafe.Add(ref rm, j) : 0f, Unsafe.Add(ref rv, j), b, out float nm, out float nv, out float q);
            if (hasM) Unsafe.Add(ref rsm, j) = nm;
            Unsafe.Add(ref rsv, j) = nv;
            Unsafe.Add(ref rsq, j) = q;
        }
        return Vector512.EqualsAll(check, check);
    }

    private static void AccumulateSegment(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                          int bucket, int column, int count, int rowOffset, int rowLength,
                                          float sign, bool first, bool hasM)
    {
        if (column >= rowLength) return;
        if (column + count > rowLength) count = rowLength - column; // ragged last row
        var g = gradient.Slice(rowOffset + column, count);
        var v = sumV.Slice(bucket, count);
        if (hasM)
        {
            var m = sumM.Slice(bucket, count);
            if (first) SetMV(g, m, v, sign); else AddMV(g, m, v, sign);
        }
        else
        {
            if (first) SetV(g, v); else AddV(g, v);
        }
    }

    /// <summary>m[j] = σ·g[j]; v[j] = g[j]².</summary>
    public static void SetMV(ReadOnlySpan<float> g, Span<float> m, Span<float> v, float sign)
    {
        int n = g.Length, j = 0;
        ref float rg = ref MemoryMarshal.GetReference(g);
        ref float rm = ref MemoryMarshal.GetReference(m);
        ref float rv = ref MemoryMarshal.GetReference(v);
        if (m.Length < n || v.Length < n) throw new ArgumentException("Destination shorter than the source.");
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(sign);
            for (; j <= n - Vector512<float>.Count; j += Vector512<float>.Count)
            {
                var x = Vector512.LoadUnsafe(ref rg, (nuint)j);
                (s * x).StoreUnsafe(ref rm, (nuint)j);
                (x * x).StoreUnsafe(ref rv, (nuint)j);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(sign);
            for (; j <= n - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                var x = Vector256.LoadUnsafe(ref rg, (nuint)j);
                (s * x).StoreUnsafe(ref rm, (nuint)j);
                (x * x).StoreUnsafe(ref rv, (nuint)j);
            }
        }
        for (; j < n; j++)
        {
            float x = Unsafe.Add(ref rg, j);
            Unsafe.Add(ref rm, j) = sign * x;
            Unsafe.Add(ref rv, j) = x * x;
        }
    }

    /// <summary>m[j] += σ·g[j]; v[j] += g[j]².</summary>
    public static void AddMV(ReadOnlySpan<float> g, Span<float> m, Span<float> v, float sign)
    {
        int n = g.Length, j = 0;
        if (m.Length < n || v.Length < n) throw new ArgumentException("Destination shorter than the source.");
        ref float rg = ref MemoryMarshal.GetReference(g);
        ref float rm = ref MemoryMarshal.GetReference(m);
        ref float rv = ref MemoryMarshal.GetReference(v);
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(sign);
            for (; j <= n - Vector512<float>.Count; j += Vector512<float>.Count)
            {
                var x = Vector512.LoadUnsafe(ref rg, (nuint)j);
                (Vector512.LoadUnsafe(ref rm, (nuint)j) + s * x).StoreUnsafe(ref rm, (nuint)j);
                (Vector512.LoadUnsafe(ref rv, (nuint)j) + x * x).StoreUnsafe(ref rv, (nuint)j);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(sign);
            for (; j <= n - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                var x = Vector256.LoadUnsafe(ref rg, (nuint)j);
                (Vector256.LoadUnsafe(ref rm, (nuint)j) + s * x).StoreUnsafe(ref rm, (nuint)j);
                (Vector256.LoadUnsafe(ref rv, (nuint)j) + x * x).StoreUnsafe(ref rv, (nuint)j);
            }
        }
        for (; j < n; j++)
        {
            float x = Unsafe.Add(ref rg, j);
            Unsafe.Add(ref rm, j) += sign * x;
            Unsafe.Add(ref rv, j) += x * x;
        }
    }

    /// <summary>v[j] = g[j]² (β1 = 0: no first-moment sum).</summary>
    public static void SetV(ReadOnlySpan<float> g, Span<float> v)
    {
        int n = g.Length, j = 0;
        if (v.Length < n) throw new ArgumentException("Destination shorter than the source.");
        ref float rg = ref MemoryMarshal.GetReference(g);
        ref float rv = ref MemoryMarshal.GetReference(v);
        if (Vector512.IsHardwareAccelerated)
        {
            for (; j <= n - Vector512<float>.Count; j += Vector512<float>.Count)
            {
                var x = Vector512.LoadUnsafe(ref rg, (nuint)j);
                (x * x).StoreUnsafe(ref rv, (nuint)j);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; j <= n - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                var x = Vector256.LoadUnsafe(ref rg, (nuint)j);
                (x * x).StoreUnsafe(ref rv, (nuint)j);
            }
        }
        for (; j < n; j++) { float x = Unsafe.Add(ref rg, j); Unsafe.Add(ref rv, j) = x * x; }
    }

    /// <summary>v[j] += g[j]² (β1 = 0: no first-moment sum).</summary>
    public static void AddV(ReadOnlySpan<float> g, Span<float> v)
    {
        int n = g.Length, j = 0;
        if (v.Length < n) throw new ArgumentException("Destination shorter than the source.");
        ref float rg = ref MemoryMarshal.GetReference(g);
        ref float rv = ref MemoryMarshal.GetReference(v);
        if (Vector512.IsHardwareAccelerated)
        {
            for (; j <= n - Vector512<float>.Count; j += Vector512<float>.Count)
            {
                var x = Vector512.LoadUnsafe(ref rg, (nuint)j);
                (Vector512.LoadUnsafe(ref rv, (nuint)j) + x * x).StoreUnsafe(ref rv, (nuint)j);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; j <= n - Vector256<float>.Count; j += Vector256<float>.Count)
            {
                var x = Vector256.LoadUnsafe(ref rg, (nuint)j);
                (Vector256.LoadUnsafe(ref rv, (nuint)j) + x * x).StoreUnsafe(ref rv, (nuint)j);
            }
        }
        for (; j < n; j++) { float x = Unsafe.Add(ref rg, j); Unsafe.Add(ref rv, j) += x * x; }
    }

    /// <summary>True when every value is finite (a sum of squares is finite iff no input was NaN/±Inf and nothing overflowed).</summary>
    public static bool AllFinite(ReadOnlySpan<float> values) => DenseAdamWCpu.AllFinite(values);

    // ---------------------------------------------------------------- phase 2: bucket moments

    /// <summary>
    /// Phase 2, per bucket b in [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>) with v̂ = v (SecondMoment = Sum):
    /// m ← β1·m + (1−β1)·sumM; v ← β2·v + (1−β2)·sumV; then the workspace receives the per-bucket
    /// update coefficient: sumM[b] = lr·m·invBc1 / (√v̂·invSqrtBc2 + ε) when β1 ≠ 0, or
    /// sumV[b] = lr / (√v̂·invSqrtBc2 + ε) when β1 = 0 (the update is then g[i]·sumV[b]).
    /// 1 − β1 and 1 − β2 are passed separately, formed in double and rounded once (1f − 0.999f is 4.7e-5 relative off 0.001).
    /// </summary>
    public static void UpdateBuckets(Span<float> firstMoment, Span<float> secondMoment, Span<float> sumM, Span<float> sumV,
                                     int bucketStart, int bucketEnd, float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsilon,
                                     in StepScalars scalars)
        => UpdateCore(firstMoment, secondMoment, sumM, sumV, bucketStart, bucketEnd, beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon, scalars, new NoOccupancy());

    /// <summary>
    /// As <see cref="UpdateBuckets"/> with SecondMoment = Mean for the Rotation layout: v̂ = v / occupancy
    /// where a bucket holds <paramref name="rows"/> entries when its column exists in the ragged last row
    /// (column (b − ρ_last) mod k &lt; <paramref name="lastRowLength"/>) and rows − 1 otherwise.
    /// </summary>
    public static void UpdateBucketsRotationMean(Span<float> firstMoment, Span<float> secondMoment, Span<float> sumM, Span<float> sumV,
                                                 int bucketStart, int bucketEnd, float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsilon,
                                                 in StepScalars scalars, int rows, int buckets, int lastRotation, int lastRowLength)
        => UpdateCore(firstMoment, secondMoment, sumM, sumV, bucketStart, bucketEnd, beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon, scalars,
                      new RotationOccupancy(rows, buckets, lastRotation, lastRowLength));

    /// <summary>As <see cref="UpdateBuckets"/> with SecondMoment = Mean from a table of bucket occupancies (Universal layout).</summary>
    public static void UpdateBucketsMean(Span<float> firstMoment, Span<float> secondMoment, Span<float> sumM, Span<float> sumV,
                                         int bucketStart, int bucketEnd, float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsilon,
                                         in StepScalars scalars, float[] occupancy)
        => UpdateCore(firstMoment, secondMoment, sumM, sumV, bucketStart, bucketEnd, beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon, scalars, new TableOccupancy(occupancy));

    private interface IOccupancy
    {
        float Get(int bucket);
        /// <summary>Occupancies of buckets [bucket, bucket + Vector&lt;float&gt;.Count).</summary>
        Vector<float> GetVector(int bucket);
    }

    private static readonly Vector<int> s_lanes = CreateLanes();

    private static Vector<int> CreateLanes()
    {
        Span<int> lanes = stackalloc int[Vector<int>.Count];
        for (int i = 0; i < lanes.Length; i++) lanes[i] = i;
        return new Vector<int>(lanes);
    }

    private readonly struct NoOccupancy : IOccupancy
    {
        public float Get(int bucket) => 1f;
        public Vector<float> GetVector(int bucket) => Vector<float>.One;
    }

    private readonly struct TableOccupancy(float[] table) : IOccupancy
    {
        public float Get(int bucket) => table[bucket];
        public Vector<float> GetVector(int bucket) => new(table, bucket);
    }

    private readonly struct RotationOccupancy(int rows, int buckets, int lastRotation, int lastRowLength) : IOccupancy
    {
        public float Get(int bucket)
        {
            int c = bucket - lastRotation;
            if (c < 0) c += buckets;
            return c < lastRowLength ? rows : rows - 1;
        }

        public Vector<float> GetVector(int bucket)
        {
            var c = new Vector<int>(bucket - lastRotation) + s_lanes;
            c = Vector.ConditionalSelect(Vector.LessThan(c, Vector<int>.Zero), c + new Vector<int>(buckets), c);
            var inLastRow = Vector.LessThan(c, new Vector<int>(lastRowLength));
            return Vector.ConvertToSingle(Vector.ConditionalSelect(inLastRow, new Vector<int>(rows), new Vector<int>(rows - 1)));
        }
    }

    private static void UpdateCore<TOcc>(Span<float> firstMoment, Span<float> secondMoment, Span<float> sumM, Span<float> sumV,
                                         int b0, int b1, float beta1, float c1, float beta2, float c2, float epsilon, in StepScalars s, TOcc occ)
        where TOcc : struct, IOccupancy
    {
        bool hasM = firstMoment.Length != 0;
        bool mean = typeof(TOcc) != typeof(NoOccupancy);
        float lr = s.LearningRate, ib1 = s.InvBiasCorrection1, isb2 = s.InvSqrtBiasCorrection2;
        int w = Vector<float>.Count;
        // Vector prefix: lane-wise IEEE operations, so every bucket gets exactly the scalar loop's value.
        int vb = b0;
        if (Vector.IsHardwareAccelerated)
        {
            var vb1 = new Vector<float>(beta1); var vc1 = new Vector<float>(c1);
            var vb2 = new Vector<float>(beta2); var vc2 = new Vector<float>(c2);
            var vlr = new Vector<float>(lr); var vib1 = new Vector<float>(ib1);
            var visb2 = new Vector<float>(isb2); var veps = new Vector<float>(epsilon);
            for (; vb <= b1 - w; vb += w)
            {
                var v = vb2 * new Vector<float>(secondMoment.Slice(vb)) + vc2 * new Vector<float>(sumV.Slice(vb));
                v.CopyTo(secondMoment.Slice(vb));
                var vhat = mean ? v / occ.GetVector(vb) : v;
                var den = Vector.SquareRoot(vhat) * visb2 + veps;
                if (hasM)
                {
                    var m = vb1 * new Vector<float>(firstMoment.Slice(vb)) + vc1 * new Vector<float>(sumM.Slice(vb));
                    m.CopyTo(firstMoment.Slice(vb));
                    (vlr * (m * vib1) / den).CopyTo(sumM.Slice(vb));
                }
                else (vlr / den).CopyTo(sumV.Slice(vb));
            }
        }
        b0 = vb;
        if (hasM)
        {
            for (int b = b0; b < b1; b++)
            {
                float m = beta1 * firstMoment[b] + c1 * sumM[b];
                float v = beta2 * secondMoment[b] + c2 * sumV[b];
                firstMoment[b] = m; secondMoment[b] = v;
                float vhat = mean ? v / occ.Get(b) : v;
                sumM[b] = lr * (m * ib1) / (MathF.Sqrt(vhat) * isb2 + epsilon);
            }
        }
        else
        {
            for (int b = b0; b < b1; b++)
            {
                float v = beta2 * secondMoment[b] + c2 * sumV[b];
                secondMoment[b] = v;
                float vhat = mean ? v / occ.Get(b) : v;
                sumV[b] = lr / (MathF.Sqrt(vhat) * isb2 + epsilon);
            }
        }
    }

    // ---------------------------------------------------------------- phase 2: parameters

    /// <summary>
    /// Phase 2 for one row restricted to buckets [b0, b1) when β1 ≠ 0: p[i] ← p[i]·decay − σ·q[b] where
    /// q is the per-bucket coefficient <see cref="UpdateBuckets"/> left in the workspace.
    /// </summary>
    public static void ApplyRowMomentum(Span<float> parameters, ReadOnlySpan<float> coefficient,
                                        int bucketStart, int bucketEnd, int buckets,
                                        int rowOffset, int rowLength, int rotation, float sign, float decay)
    {
        int bs = bucketStart, be = Math.Min(bucketEnd, rotation);
        if (bs < be) MomentumSegment(parameters, coefficient, bs, bs + buckets - rotation, be - bs, rowOffset, rowLength, sign, decay);
        bs = Math.Max(bucketStart, rotation); be = bucketEnd;
        if (bs < be) MomentumSegment(parameters, coefficient, bs, bs - rotation, be - bs, rowOffset, rowLength, sign, decay);
    }

    /// <summary>
    /// Phase 2 for one row restricted to buckets [b0, b1) when β1 = 0: p[i] ← p[i]·decay − g[i]·w[b] where
    /// w is the per-bucket coefficient <see cref="UpdateBuckets"/> left in the workspace.
    /// </summary>
    public static void ApplyRowGradient(Span<float> parameters, ReadOnlySpan<float> gradient, ReadOnlySpan<float> coefficient,
                                        int bucketStart, int bucketEnd, int buckets,
                                        int rowOffset, int rowLength, int rotation, float decay)
    {
        int bs = bucketStart, be = Math.Min(bucketEnd, rotation);
        if (bs < be) GradientSegment(parameters, gradient, coefficient, bs, bs + buckets - rotation, be - bs, rowOffset, rowLength, decay);
        bs = Math.Max(bucketStart, rotation); be = bucketEnd;
        if (bs < be) GradientSegment(parameters, gradient, coefficient, bs, bs - rotation, be - bs, rowOffset, rowLength, decay);
    }

    /// <summary>
    /// Phase 2 (parameters) for buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>) of the Rotation view, all rows at once,
    /// with the per-bucket coefficient q in <paramref name="coefficient"/> (left there by <see cref="UpdateBuckets"/> in the
    /// sums-then-update step, or by phase 1 itself in the streaming step, <see cref="AccumulateMomentsTile(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, Span{float}, Span{float}, int, int, int, int, ReadOnlySpan{int}, ReadOnlySpan{int}, float, float, float, float, float, bool, in StepScalars)"/>):
    /// for each vector of 16 buckets the coefficient is loaded once and every row's 16 parameters at column (b − ρ_r) mod k are updated,
    /// rows in order (a vector that straddles a wrap point or the end of the ragged last row is done lane by lane).
    /// β1 ≠ 0 (<paramref name="gradient"/> empty): p ← p·decay − σ_r·q[b]; β1 = 0: p ← p·decay − g·q[b]. Same arithmetic as
    /// <see cref="ApplyRowMomentum"/> / <see cref="ApplyRowGradient"/>; every parameter is written by exactly one bucket.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ApplyTile(Span<float> parameters, ReadOnlySpan<float> gradient, ReadOnlySpan<float> coefficient,
                                 int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                 ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs, float decay)
    {
        int rows = rotations.Length;
        bool momentum = gradient.Length == 0;
        if (rows == 0 || signs.Length != rows || (uint)bucketStart > (uint)bucketEnd || bucketEnd > buckets || coefficient.Length < bucketEnd
            || lastRowLength <= 0 || lastRowLength > buckets || parameters.Length != (long)(rows - 1) * buckets + lastRowLength
            || (!momentum && gradient.Length != parameters.Length))
            throw new ArgumentException("Rotation tile arguments disagree with the buffers.");
        // β1 = 0 reads g as well (2·R streams per vector): without prefetch that was slower than row by row; with the
        // prefetch below it is slightly faster (d = 64M, Ratio 32, quiet machine: Rotation β1=0 30.8 -> 29.6 ms).
        if (!Vector512.IsHardwareAccelerated)
        {
            for (int r = 0; r < rows; r++)
            {
                int len = r == rows - 1 ? lastRowLength : buckets;
                if (momentum) ApplyRowMomentum(parameters, coefficient, bucketStart, bucketEnd, buckets, r * buckets, len, rotations[r], signs[r] > 0 ? 1f : -1f, decay);
                else ApplyRowGradient(parameters, gradient, coefficient, bucketStart, bucketEnd, buckets, r * buckets, len, rotations[r], decay);
            }
            return;
        }
        const int W = 16;
        ref float rp = ref MemoryMarshal.GetReference(parameters);
        ref float rg = ref MemoryMarshal.GetReference(gradient);
        ref float rq = ref MemoryMarshal.GetReference(coefficient);
        ref int rrho = ref MemoryMarshal.GetReference(rotations);
        ref int rsig = ref MemoryMarshal.GetReference(signs);
        var vd = Vector512.Create(decay);
        int b = bucketStart;
        for (; b <= bucketEnd - W; b += W)
        {
            var q = Vector512.LoadUnsafe(ref rq, (nuint)b);
            for (int r = 0; r < rows; r++)
            {
                int rho = Unsafe.Add(ref rrho, r);
                int c = b - rho;
                if (c < 0) c += buckets;
                int len = r == rows - 1 ? lastRowLength : buckets;
                nuint rowOffset = (nuint)r * (nuint)buckets;
                float sign = Unsafe.Add(ref rsig, r) > 0 ? 1f : -1f;
                if (c + W <= len)
                {
                    nuint i = rowOffset + (nuint)c;
                    if (Sse.IsSupported && c + PrefetchAhead < len)
                    {
                        Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rp, i + PrefetchAhead)));
                        if (!momentum) Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rg, i + PrefetchAhead)));
                    }
                    var pv = Vector512.LoadUnsafe(ref rp, i);
                    pv = momentum ? pv * vd - Vector512.Create(sign) * q : pv * vd - Vector512.LoadUnsafe(ref rg, i) * q;
                    pv.StoreUnsafe(ref rp, i);
                }
                else ApplyLanes(ref rp, ref rg, ref rq, b, W, rho, buckets, len, rowOffset, sign, decay, momentum);
            }
        }
        if (b < bucketEnd)
        {
            for (int r = 0; r < rows; r++)
            {
                int len = r == rows - 1 ? lastRowLength : buckets;
                ApplyLanes(ref rp, ref rg, ref rq, b, bucketEnd - b, Unsafe.Add(ref rrho, r), buckets, len, (nuint)r * (nuint)buckets,
                           Unsafe.Add(ref rsig, r) > 0 ? 1f : -1f, decay, momentum);
            }
        }
    }

    private static void ApplyLanes(ref float rp, ref float rg, ref float rq, int b, int count, int rho, int buckets, int len,
                                   nuint rowOffset, float sign, float decay, bool momentum)
    {
        for (int j = 0; j < count; j++)
        {
            int cj = b + j - rho;
            if (cj < 0) cj += buckets;
            if (cj >= len) continue;
            nuint i = rowOffset + (nuint)cj;
            float qj = Unsafe.Add(ref rq, b + j);
            Unsafe.Add(ref rp, i) = momentum ? Unsafe.Add(ref rp, i) * decay - sign * qj : Unsafe.Add(ref rp, i) * decay - Unsafe.Add(ref rg, i) * qj;
        }
    }

    private static void MomentumSegment(Span<float> parameters, ReadOnlySpan<float> coefficient, int bucket, int column, int count,
                                        int rowOffset, int rowLength, float sign, float decay)
    {
        if (column >= rowLength) return;
        if (column + count > rowLength) count = rowLength - column;
        ScaleSubtract(parameters.Slice(rowOffset + column, count), coefficient.Slice(bucket, count), sign, decay);
    }

    private static void GradientSegment(Span<float> parameters, ReadOnlySpan<float> gradient, ReadOnlySpan<float> coefficient,
                                        int bucket, int column, int count, int rowOffset, int rowLength, float decay)
    {
        if (column >= rowLength) return;
        if (column + count > rowLength) count = rowLength - column;
        ScaleSubtractProduct(parameters.Slice(rowOffset + column, count), gradient.Slice(rowOffset + column, count),
                             coefficient.Slice(bucket, count), decay);
    }

    /// <summary>p[j] ← p[j]·decay − σ·q[j].</summary>
    public static void ScaleSubtract(Span<float> p, ReadOnlySpan<float> q, float sign, float decay)
    {
        int n = p.Length, j = 0;
        if (q.Length < n) throw new ArgumentException("Coefficient shorter than the parameters.");
        ref float rp = ref MemoryMarshal.GetReference(p);
        ref float rq = ref MemoryMarshal.GetReference(q);
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(sign); var d = Vector512.Create(decay);
            for (; j <= n - Vector512<float>.Count; j += Vector512<float>.Count)
                (Vector512.LoadUnsafe(ref rp, (nuint)j) * d - s * Vector512.LoadUnsafe(ref rq, (nuint)j)).StoreUnsafe(ref rp, (nuint)j);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(sign); var d = Vector256.Create(decay);
            for (; j <= n - Vector256<float>.Count; j += Vector256<float>.Count)
                (Vector256.LoadUnsafe(ref rp, (nuint)j) * d - s * Vector256.LoadUnsafe(ref rq, (nuint)j)).StoreUnsafe(ref rp, (nuint)j);
        }
        for (; j < n; j++) Unsafe.Add(ref rp, j) = Unsafe.Add(ref rp, j) * decay - sign * Unsafe.Add(ref rq, j);
    }

    /// <summary>p[j] ← p[j]·decay − g[j]·w[j].</summary>
    public static void ScaleSubtractProduct(Span<float> p, ReadOnlySpan<float> g, ReadOnlySpan<float> w, float decay)
    {
        int n = p.Length, j = 0;
        if (g.Length < n || w.Length < n) throw new ArgumentException("Inputs shorter than the parameters.");
        ref float rp = ref MemoryMarshal.GetReference(p);
        ref float rg = ref MemoryMarshal.GetReference(g);
        ref float rw = ref MemoryMarshal.GetReference(w);
        if (Vector512.IsHardwareAccelerated)
        {
            var d = Vector512.Create(decay);
            for (; j <= n - Vector512<float>.Count; j += Vector512<float>.Count)
                (Vector512.LoadUnsafe(ref rp, (nuint)j) * d - Vector512.LoadUnsafe(ref rg, (nuint)j) * Vector512.LoadUnsafe(ref rw, (nuint)j)).StoreUnsafe(ref rp, (nuint)j);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var d = Vector256.Create(decay);
            for (; j <= n - Vector256<float>.Count; j += Vector256<float>.Count)
                (Vector256.LoadUnsafe(ref rp, (nuint)j) * d - Vector256.LoadUnsafe(ref rg, (nuint)j) * Vector256.LoadUnsafe(ref rw, (nuint)j)).StoreUnsafe(ref rp, (nuint)j);
        }
        for (; j < n; j++) Unsafe.Add(ref rp, j) = Unsafe.Add(ref rp, j) * decay - Unsafe.Add(ref rg, j) * Unsafe.Add(ref rw, j);
    }
}
