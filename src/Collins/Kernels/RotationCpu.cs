using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
    {
        bool hasM = sumM.Length != 0;
        // Segment A: buckets b < ρ hold columns c = b + k − ρ.
        int bs = bucketStart, be = Math.Min(bucketEnd, rotation);
        if (bs < be) AccumulateSegment(gradient, sumM, sumV, bs, bs + buckets - rotation, be - bs, rowOffset, rowLength, sign, first, hasM);
        // Segment B: buckets b ≥ ρ hold columns c = b − ρ.
        bs = Math.Max(bucketStart, rotation); be = bucketEnd;
        if (bs < be) AccumulateSegment(gradient, sumM, sumV, bs, bs - rotation, be - bs, rowOffset, rowLength, sign, first, hasM);
    }

    /// <summary>
    /// Phase 1 for buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>) of the Rotation view, all rows at once:
    /// for each vector of 16 buckets the sums are kept in registers while the rows are read in order 0..R−1 (row r at
    /// column (b − ρ_r) mod k; a vector that straddles row r's wrap point, or the end of the ragged last row, is filled lane by
    /// lane, absent entries as 0), then stored once. sumM[b] = Σ_r σ_r·g, sumV[b] = Σ_r g² with the same operations in the
    /// same order as <see cref="AccumulateRow"/> row after row, so the result never depends on the tiling or the thread count.
    /// <paramref name="sumM"/> is empty when β1 = 0. Returns false when a sumV of the range is not finite.
    /// <paramref name="gradient"/> holds (R − 1)·k + <paramref name="lastRowLength"/> floats; <paramref name="rotations"/> are ρ_r
    /// (0 ≤ ρ_r &lt; k) and <paramref name="signs"/> σ_r = ±1 for r = 0..R−1.
    /// </summary>
    /// <remarks>
    /// With <paramref name="nonTemporal"/> the sums of whole 16-bucket vectors are written with non-temporal stores, which skip the
    /// read-for-ownership of the destination lines: for a tensor whose gradient is far larger than the cache, the sums would be
    /// evicted before phase 2 reads them anyway, so this saves k·4 bytes of memory reads per sum array in a pass bound by read
    /// bandwidth (measured: docs/benchmarks.md, "What moved in this round", change 1). It needs both destinations 64-byte aligned at
    /// <paramref name="bucketStart"/> (as the optimizers' workspaces are, see <see cref="AlignedFloats"/>); when they are not, plain
    /// stores are used. The values written are the same either way.
    /// Each row is prefetched at the distance of this process's <see cref="CpuTuning.Current"/> (which throws
    /// <see cref="InvalidOperationException"/> when <c>COLLINS_CPU_TUNING</c> cannot be read), all rows in one pass.
    /// </remarks>
    public static bool AccumulateTile(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                      int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                      ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs, bool nonTemporal = false)
        => AccumulateTilePrefetched(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength, rotations, signs, nonTemporal,
                                    CpuTuning.Current.Phase1Prefetch);

    /// <summary>
    /// <see cref="AccumulateTile"/> with each row stream software-prefetched <paramref name="prefetch"/> floats ahead (one of <see cref="CpuTuning.Distances"/>;
    /// a prefetch never faults, so an address that a moving GC made stale costs nothing but the hint). The sums do not depend on it.
    /// </summary>
    internal static bool AccumulateTilePrefetched(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                        int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                        ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs, bool nonTemporal, int prefetch, int rowsPerPass = 0)
    {
        int rows = rotations.Length;
        bool hasM = sumM.Length != 0;
        if (rows == 0 || signs.Length != rows || (uint)bucketStart > (uint)bucketEnd || bucketEnd > buckets
            || sumV.Length < bucketEnd || (hasM && sumM.Length < bucketEnd)
            || lastRowLength <= 0 || lastRowLength > buckets || gradient.Length != (long)(rows - 1) * buckets + lastRowLength)
            throw new ArgumentException("Rotation tile arguments disagree with the buffers.");
        CheckDistance(prefetch, nameof(prefetch));
        if (!Vector512.IsHardwareAccelerated)
        {
            for (int r = 0; r < rows; r++)
                AccumulateRow(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, r * buckets, r == rows - 1 ? lastRowLength : buckets,
                              rotations[r], signs[r] > 0 ? 1f : -1f, r == 0);
            return AllFinite(sumV.Slice(bucketStart, bucketEnd - bucketStart));
        }
        if (nonTemporal && System.Runtime.Intrinsics.X86.Avx512F.IsSupported)
        {
            // Pinned for the whole call: an aligned address must stay aligned (a non-temporal store to a moved, misaligned
            // address would fault).
            fixed (float* pm = sumM)
            fixed (float* pv = sumV)
            {
                if (IsCacheLineAligned(pv + bucketStart) && (!hasM || IsCacheLineAligned(pm + bucketStart)))
                {
                    bool finite = AccumulateTileVector<NonTemporalStore>(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength, rotations, signs, prefetch, rowsPerPass);
                    System.Runtime.Intrinsics.X86.Sse.StoreFence(); // non-temporal stores are weakly ordered: drain them before the tile counts as done
                    return finite;
                }
            }
        }
        return AccumulateTileVector<PlainStore>(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength, rotations, signs, prefetch, rowsPerPass);
    }

    private static bool IsCacheLineAligned(float* element) => ((nuint)element & 63) == 0;

    /// <summary>Refuses a prefetch distance the kernels have no copy for (on every CPU, whether or not its vector path would read it).</summary>
    private static void CheckDistance(int distance, string name)
    {
        if (!CpuTuning.IsDistance(distance)) throw NotADistance(name, distance);
    }

    /// <summary>The refusal of <see cref="CheckDistance"/>, also the last arm of each switch over the distances.</summary>
    private static ArgumentOutOfRangeException NotADistance(string name, int distance)
        => new(name, distance, "Not a prefetch distance the kernels are compiled for (CpuTuning.Distances).");

    /// <summary>How <see cref="AccumulateTileVector{TStore}"/> writes a vector of sums (a struct type argument: the JIT compiles one loop per store kind, with no branch inside).</summary>
    private interface IVectorStore { static abstract void Store(Vector512<float> value, ref float destination); }
    private readonly struct PlainStore : IVectorStore
    {
        public static void Store(Vector512<float> value, ref float destination) => value.StoreUnsafe(ref destination);
    }
    private readonly struct NonTemporalStore : IVectorStore
    {
        public static void Store(Vector512<float> value, ref float destination)
            => System.Runtime.Intrinsics.X86.Avx512F.StoreAlignedNonTemporal((float*)Unsafe.AsPointer(ref destination), value);
    }

    /// <summary>The prefetch distance of <see cref="AccumulateTileVector{TStore, TAhead}"/> as its type argument.</summary>
    private static bool AccumulateTileVector<TStore>(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                                     int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                                     ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs, int prefetch, int rowsPerPass) where TStore : struct, IVectorStore
        => prefetch switch
        {
            0 => AccumulateTileVector<TStore, Ahead0>(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength, rotations, signs, rowsPerPass),
            64 => AccumulateTileVector<TStore, Ahead64>(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength, rotations, signs, rowsPerPass),
            128 => AccumulateTileVector<TStore, Ahead128>(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength, rotations, signs, rowsPerPass),
            256 => AccumulateTileVector<TStore, Ahead256>(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength, rotations, signs, rowsPerPass),
            512 => AccumulateTileVector<TStore, Ahead512>(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength, rotations, signs, rowsPerPass),
            1024 => AccumulateTileVector<TStore, Ahead1024>(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength, rotations, signs, rowsPerPass),
            _ => throw NotADistance(nameof(prefetch), prefetch),
        };

    /// <summary>
    /// Buckets per chunk of a tile that passes over fewer than all rows work through at a time (<see cref="AccumulateTileVector{TStore, TAhead}"/>,
    /// <see cref="UpdateApplyVector{TFirst, TEstimate, TRow, TSketch}"/>): their partial sums or coefficients for one chunk are a
    /// stack scratch of at most 2 × 2048 floats (16 KiB; 2048 measured as fast as 4096, and half the stack), in the cache while the chunk's passes run; nothing is allocated.
    /// </summary>
    private const int PassChunkBuckets = 2048;

    /// <summary>
    /// The Vector512 body of <see cref="AccumulateTile"/> (arguments already validated), each row prefetched <typeparamref name="TAhead"/>
    /// floats ahead, over whole 16-bucket vectors (the partial vector at the end of the range: <see cref="AccumulateTail"/>).
    /// With <paramref name="rowsPerPass"/> n in [1, R) the rows are read n at a time: for each chunk of the tile
    /// (<see cref="PassChunkBuckets"/>), pass j adds rows [j·n, (j + 1)·n) into a stack scratch of the chunk's sums and the last pass
    /// stores them; otherwise one pass over the whole range reads all R rows, the sums staying in registers. Every bucket receives
    /// its rows in the order 0..R−1 with the same operations either way (a float stored and reloaded is the same float), so the sums
    /// never depend on n; what n changes is how many row streams a pass reads.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    [SkipLocalsInit]
    private static bool AccumulateTileVector<TStore, TAhead>(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                                             int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                                             ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs, int rowsPerPass)
        where TStore : struct, IVectorStore where TAhead : struct, IPrefetchDistance
    {
        const int W = 16; // Vector512<float>.Count
        int rows = rotations.Length;
        bool hasM = sumM.Length != 0;
        bool grouped = rowsPerPass > 0 && rowsPerPass < rows;
        int passRows = grouped ? rowsPerPass : rows;
        int vectorEnd = bucketStart + (bucketEnd - bucketStart) / W * W;
        int chunkBuckets = grouped ? PassChunkBuckets : vectorEnd - bucketStart;
        Span<float> scratch = grouped ? stackalloc float[2 * PassChunkBuckets] : default;
        ref float rg = ref MemoryMarshal.GetReference(gradient);
        ref float rm = ref MemoryMarshal.GetReference(sumM);
        ref float rv = ref MemoryMarshal.GetReference(sumV);
        ref float xm = ref MemoryMarshal.GetReference(scratch);
        ref float xv = ref Unsafe.Add(ref xm, PassChunkBuckets);   // only dereferenced when grouped
        ref int rrho = ref MemoryMarshal.GetReference(rotations);
        ref int rsig = ref MemoryMarshal.GetReference(signs);
        Span<float> lanes = stackalloc float[W];
        ref float rl = ref MemoryMarshal.GetReference(lanes);
        var check = Vector512<float>.Zero;
        for (int chunk = bucketStart; chunk < vectorEnd; chunk += chunkBuckets)
        {
            int chunkEnd = Math.Min(chunk + chunkBuckets, vectorEnd);
            for (int r0 = 0; r0 < rows; r0 += passRows)
            {
                int r1 = Math.Min(r0 + passRows, rows);
                bool last = r1 == rows;
                for (int b = chunk; b < chunkEnd; b += W)
                {
                    nuint o = (nuint)(b - chunk);
                    Vector512<float> sm = default, sv = default;
                    if (r0 > 0)
                    {
                        if (hasM) sm = Vector512.LoadUnsafe(ref xm, o);
                        sv = Vector512.LoadUnsafe(ref xv, o);
                    }
                    for (int r = r0; r < r1; r++)
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
                            if (TAhead.Ahead != 0 && System.Runtime.Intrinsics.X86.Sse.IsSupported && c + TAhead.Ahead < len)
                                System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rg, rowOffset + (nuint)(c + TAhead.Ahead))));
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
                    if (last)
                    {
                        if (hasM) TStore.Store(sm, ref Unsafe.Add(ref rm, b));
                        TStore.Store(sv, ref Unsafe.Add(ref rv, b));
                        check += sv * Vector512<float>.Zero;
                    }
                    else
                    {
                        if (hasM) sm.StoreUnsafe(ref xm, o);
                        sv.StoreUnsafe(ref xv, o);
                    }
                }
            }
        }
        return Vector512.EqualsAll(check, check)
             & AccumulateTail(gradient, sumM, sumV, vectorEnd, bucketEnd, buckets, lastRowLength, rotations, signs);
    }

    /// <summary>
    /// The buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>) after the last whole vector of a tile, one at a time
    /// (the same operations in the same order per bucket as the vector body); false when a sum of squares is not finite.
    /// </summary>
    private static bool AccumulateTail(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                       int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                       ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs)
    {
        int rows = rotations.Length;
        bool hasM = sumM.Length != 0;
        bool finite = true;
        ref float rg = ref MemoryMarshal.GetReference(gradient);
        for (int b = bucketStart; b < bucketEnd; b++)
        {
            float sm = 0f, sv = 0f;
            for (int r = 0; r < rows; r++)
            {
                int c = b - rotations[r];
                if (c < 0) c += buckets;
                int len = r == rows - 1 ? lastRowLength : buckets;
                float x = c < len ? Unsafe.Add(ref rg, (nuint)r * (nuint)buckets + (nuint)c) : 0f;
                float sx = (signs[r] > 0 ? 1f : -1f) * x;
                if (r == 0) { sm = sx; sv = x * x; } else { sm += sx; sv += x * x; }
            }
            if (hasM) sumM[b] = sm;
            sumV[b] = sv;
            finite &= float.IsFinite(sv);
        }
        return finite;
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

        /// <summary>Occupancies of buckets [bucket, bucket + 16), for the Vector512 loop of <see cref="UpdateApplyTile"/>.</summary>
        public Vector512<float> GetVector512(int bucket)
        {
            var c = Vector512.Create(bucket - lastRotation) + Vector512<int>.Indices;
            c = Vector512.ConditionalSelect(Vector512.LessThan(c, Vector512<int>.Zero), c + Vector512.Create(buckets), c);
            var inLastRow = Vector512.LessThan(c, Vector512.Create(lastRowLength));
            return Vector512.ConvertToSingle(Vector512.ConditionalSelect(inLastRow, Vector512.Create(rows), Vector512.Create(rows - 1)));
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

    // ---------------------------------------------------------------- phase 2: moments and parameters in one pass

    /// <summary>
    /// Phase 2 for buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>) of the Rotation view, fused: for each vector
    /// of 16 buckets the moments are updated (m ← β1·m + (1−β1)·sumM, v ← β2·v + (1−β2)·sumV, both stored), the buckets' update
    /// coefficient is formed in a register (β1 ≠ 0: q = lr·m·invBc1 / (√v̂·invSqrtBc2 + ε); β1 = 0: w = lr / (√v̂·invSqrtBc2 + ε)),
    /// and every row's 16 parameters that land in those buckets are updated at once (p ← p·decay − σ_r·q, or p ← p·decay − g·w).
    /// v̂ = v, or v / occupancy with <paramref name="meanSecondMoment"/> (a bucket holds R entries when its column exists in the ragged
    /// last row, R − 1 otherwise). The coefficient never goes to memory, and the workspace is only read by the vector loop; the
    /// division and square root overlap the row updates' memory traffic.
    /// Every value is bit-identical to <see cref="UpdateBuckets"/> (or <see cref="UpdateBucketsRotationMean"/>) followed by
    /// <see cref="ApplyTile"/> over the same range, which is what the last partial vector and CPUs without AVX-512 run (they leave
    /// the coefficient in the workspace, as those two do).
    /// <paramref name="sumM"/> and <paramref name="firstMoment"/> are empty when β1 = 0; <paramref name="gradient"/> is read only then.
    /// The rows and the moment streams are prefetched at the distances of this process's <see cref="CpuTuning.Current"/> (which
    /// throws <see cref="InvalidOperationException"/> when <c>COLLINS_CPU_TUNING</c> cannot be read), all rows in one pass.
    /// </summary>
    public static void UpdateApplyTile(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                                       Span<float> sumM, Span<float> sumV, int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                       ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs,
                                       float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsilon,
                                       in StepScalars scalars, bool meanSecondMoment = false)
        => UpdateApplyTilePrefetched(parameters, gradient, firstMoment, secondMoment, sumM, sumV, bucketStart, bucketEnd, buckets, lastRowLength,
                                     rotations, signs, beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon, in scalars, meanSecondMoment,
                                     CpuTuning.Current.Phase2Prefetch, CpuTuning.Current.SketchPrefetch);

    /// <summary>
    /// <see cref="UpdateApplyTile"/> with the row streams prefetched <paramref name="rowPrefetch"/> floats ahead and the moment and workspace streams
    /// <paramref name="sketchPrefetch"/> buckets ahead (each one of <see cref="CpuTuning.Distances"/>). The values do not depend on them.
    /// </summary>
    internal static void UpdateApplyTilePrefetched(Span<float> parameters, ReadOnlySpan<float> gradient, Span<float> firstMoment, Span<float> secondMoment,
                                         Span<float> sumM, Span<float> sumV, int bucketStart, int bucketEnd, int buckets, int lastRowLength,
                                         ReadOnlySpan<int> rotations, ReadOnlySpan<int> signs,
                                         float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float epsilon,
                                         in StepScalars scalars, bool meanSecondMoment, int rowPrefetch, int sketchPrefetch, int rowsPerPass = 0)
    {
        int rows = rotations.Length;
        bool hasM = firstMoment.Length != 0;
        if (rows == 0 || signs.Length != rows || (uint)bucketStart > (uint)bucketEnd || bucketEnd > buckets
            || secondMoment.Length < bucketEnd || sumV.Length < bucketEnd || (hasM && (sumM.Length < bucketEnd || firstMoment.Length < bucketEnd))
            || lastRowLength <= 0 || lastRowLength > buckets || parameters.Length != (long)(rows - 1) * buckets + lastRowLength
            || (!hasM && gradient.Length != parameters.Length))
            throw new ArgumentException("Rotation tile arguments disagree with the buffers.");
        CheckDistance(rowPrefetch, nameof(rowPrefetch));
        CheckDistance(sketchPrefetch, nameof(sketchPrefetch));
        int vectorEnd = bucketStart;
        if (Vector512.IsHardwareAccelerated)
        {
            var tile = new FusedTile
            {
                Parameters = parameters, Gradient = gradient, FirstMoment = firstMoment, SecondMoment = secondMoment, SumM = sumM, SumV = sumV,
                BucketStart = bucketStart, BucketEnd = bucketEnd, LastRowLength = lastRowLength, Rotations = rotations, Signs = signs, RowsPerPass = rowsPerPass,
                K = new FusedConstants(beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon, in scalars, rows, buckets, rotations[rows - 1], lastRowLength),
            };
            vectorEnd = (hasM, meanSecondMoment) switch
            {
                (true, false) => UpdateApplyRows<WithFirstMoment, SumEstimate>(ref tile, rowPrefetch, sketchPrefetch),
                (true, true) => UpdateApplyRows<WithFirstMoment, MeanEstimate>(ref tile, rowPrefetch, sketchPrefetch),
                (false, false) => UpdateApplyRows<NoFirstMoment, SumEstimate>(ref tile, rowPrefetch, sketchPrefetch),
                (false, true) => UpdateApplyRows<NoFirstMoment, MeanEstimate>(ref tile, rowPrefetch, sketchPrefetch),
            };
        }
        if (vectorEnd < bucketEnd)
        {
            if (meanSecondMoment)
                UpdateBucketsRotationMean(firstMoment, secondMoment, sumM, sumV, vectorEnd, bucketEnd, beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon,
                                          in scalars, rows, buckets, rotations[rows - 1], lastRowLength);
            else
                UpdateBuckets(firstMoment, secondMoment, sumM, sumV, vectorEnd, bucketEnd, beta1, oneMinusBeta1, beta2, oneMinusBeta2, epsilon, in scalars);
            ApplyTile(parameters, hasM ? default : gradient, hasM ? sumM : sumV, vectorEnd, bucketEnd, buckets, lastRowLength, rotations, signs, scalars.Decay);
        }
    }

    /// <summary>The arguments of one fused phase-2 tile (<see cref="UpdateApplyVector{TFirst, TEstimate, TRow, TSketch}"/>), validated.</summary>
    private ref struct FusedTile
    {
        public Span<float> Parameters, FirstMoment, SecondMoment;
        public ReadOnlySpan<float> Gradient, SumM, SumV;
        public ReadOnlySpan<int> Rotations, Signs;
        public int BucketStart, BucketEnd, LastRowLength, RowsPerPass;
        public FusedConstants K;
    }

    /// <summary>
    /// The prefetch distances of the fused phase 2 as type arguments: row streams <paramref name="rowPrefetch"/> floats ahead, the
    /// moment and workspace streams <paramref name="sketchPrefetch"/> buckets ahead. Besides the 32 row streams of a tile those four
    /// streams were left to the hardware prefetchers, which did not follow them (docs/benchmarks.md, "What moved in this round",
    /// change 3); β1 = 0 reads g in the row streams as well.
    /// </summary>
    private static int UpdateApplyRows<TFirst, TEstimate>(ref FusedTile t, int rowPrefetch, int sketchPrefetch)
        where TFirst : struct, IFirstMomentKind where TEstimate : struct, IEstimateKind
        => rowPrefetch switch
        {
            0 => UpdateApplySketch<TFirst, TEstimate, Ahead0>(ref t, sketchPrefetch),
            64 => UpdateApplySketch<TFirst, TEstimate, Ahead64>(ref t, sketchPrefetch),
            128 => UpdateApplySketch<TFirst, TEstimate, Ahead128>(ref t, sketchPrefetch),
            256 => UpdateApplySketch<TFirst, TEstimate, Ahead256>(ref t, sketchPrefetch),
            512 => UpdateApplySketch<TFirst, TEstimate, Ahead512>(ref t, sketchPrefetch),
            1024 => UpdateApplySketch<TFirst, TEstimate, Ahead1024>(ref t, sketchPrefetch),
            _ => throw NotADistance(nameof(rowPrefetch), rowPrefetch),
        };

    private static int UpdateApplySketch<TFirst, TEstimate, TRow>(ref FusedTile t, int sketchPrefetch)
        where TFirst : struct, IFirstMomentKind where TEstimate : struct, IEstimateKind where TRow : struct, IPrefetchDistance
        => sketchPrefetch switch
        {
            0 => UpdateApplyVector<TFirst, TEstimate, TRow, Ahead0>(ref t),
            64 => UpdateApplyVector<TFirst, TEstimate, TRow, Ahead64>(ref t),
            128 => UpdateApplyVector<TFirst, TEstimate, TRow, Ahead128>(ref t),
            256 => UpdateApplyVector<TFirst, TEstimate, TRow, Ahead256>(ref t),
            512 => UpdateApplyVector<TFirst, TEstimate, TRow, Ahead512>(ref t),
            1024 => UpdateApplyVector<TFirst, TEstimate, TRow, Ahead1024>(ref t),
            _ => throw NotADistance(nameof(sketchPrefetch), sketchPrefetch),
        };

    /// <summary>Step constants of <see cref="UpdateApplyTile"/>, broadcast once per call.</summary>
    private readonly struct FusedConstants(float beta1, float c1, float beta2, float c2, float epsilon, in StepScalars s,
                                           int rows, int buckets, int lastRotation, int lastRowLength)
    {
        public readonly Vector512<float> Beta1 = Vector512.Create(beta1), C1 = Vector512.Create(c1);
        public readonly Vector512<float> Beta2 = Vector512.Create(beta2), C2 = Vector512.Create(c2);
        public readonly Vector512<float> Epsilon = Vector512.Create(epsilon), LearningRate = Vector512.Create(s.LearningRate);
        public readonly Vector512<float> InvBc1 = Vector512.Create(s.InvBiasCorrection1), InvSqrtBc2 = Vector512.Create(s.InvSqrtBiasCorrection2);
        public readonly Vector512<float> Decay = Vector512.Create(s.Decay);
        public readonly int Rows = rows, Buckets = buckets;
        /// <summary>v̂'s divisor when the second moment is the Mean estimate (the same occupancy UpdateBucketsRotationMean uses).</summary>
        public readonly RotationOccupancy Occupancy = new(rows, buckets, lastRotation, lastRowLength);
    }

    private interface IFirstMomentKind { static abstract bool Present { get; } }
    private readonly struct WithFirstMoment : IFirstMomentKind { public static bool Present => true; }
    private readonly struct NoFirstMoment : IFirstMomentKind { public static bool Present => false; }
    private interface IEstimateKind { static abstract bool Mean { get; } }
    private readonly struct SumEstimate : IEstimateKind { public static bool Mean => false; }
    private readonly struct MeanEstimate : IEstimateKind { public static bool Mean => true; }

    /// <summary>
    /// The Vector512 body of <see cref="UpdateApplyTile"/> over whole 16-bucket vectors from the tile's first bucket; returns
    /// where it stopped (the partial vector, if any, is left to the caller). One loop per (moment kind, estimate, prefetch distances),
    /// no branch on them inside. Per lane the operations and their order are those of <c>UpdateCore</c> and <see cref="ApplyTile"/>;
    /// rows are prefetched <typeparamref name="TRow"/> floats ahead, the moment and workspace streams <typeparamref name="TSketch"/> buckets ahead.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    [SkipLocalsInit]
    private static int UpdateApplyVector<TFirst, TEstimate, TRow, TSketch>(ref FusedTile t)
        where TFirst : struct, IFirstMomentKind where TEstimate : struct, IEstimateKind
        where TRow : struct, IPrefetchDistance where TSketch : struct, IPrefetchDistance
    {
        const int W = 16;
        ref float rp = ref MemoryMarshal.GetReference(t.Parameters);
        ref float rg = ref MemoryMarshal.GetReference(t.Gradient);
        ref float rm = ref MemoryMarshal.GetReference(t.FirstMoment);
        ref float rv = ref MemoryMarshal.GetReference(t.SecondMoment);
        ref float rsm = ref MemoryMarshal.GetReference(t.SumM);
        ref float rsv = ref MemoryMarshal.GetReference(t.SumV);
        ref int rrho = ref MemoryMarshal.GetReference(t.Rotations);
        ref int rsig = ref MemoryMarshal.GetReference(t.Signs);
        ref readonly FusedConstants k = ref t.K;
        int rows = k.Rows, buckets = k.Buckets, lastRowLength = t.LastRowLength, bucketEnd = t.BucketEnd;
        var vd = k.Decay;
        int passRows = t.RowsPerPass;
        bool grouped = passRows > 0 && passRows < rows;
        int firstPassEnd = grouped ? passRows : rows;
        int vectorEnd = t.BucketStart + (bucketEnd - t.BucketStart) / W * W;
        // Grouped, the tile is worked through in chunks whose coefficients wait in this scratch for the chunk's later passes.
        Span<float> scratch = grouped ? stackalloc float[PassChunkBuckets] : default;
        ref float rq = ref MemoryMarshal.GetReference(scratch);
        int chunkBuckets = grouped ? PassChunkBuckets : vectorEnd - t.BucketStart;
        for (int chunk = t.BucketStart; chunk < vectorEnd; chunk += chunkBuckets)
        {
            int chunkEnd = Math.Min(chunk + chunkBuckets, vectorEnd);
            for (int b = chunk; b < chunkEnd; b += W)
            {
                // Moments of the 16 buckets, then their coefficient (lane-wise IEEE operations, no fused multiply-add, as UpdateCore).
                if (TSketch.Ahead != 0 && System.Runtime.Intrinsics.X86.Sse.IsSupported && b + TSketch.Ahead < bucketEnd)
                {
                    System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rv, b + TSketch.Ahead)));
                    System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rsv, b + TSketch.Ahead)));
                    if (TFirst.Present)
                    {
                        System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rm, b + TSketch.Ahead)));
                        System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rsm, b + TSketch.Ahead)));
                    }
                }
                var v = k.Beta2 * Vector512.LoadUnsafe(ref rv, (nuint)b) + k.C2 * Vector512.LoadUnsafe(ref rsv, (nuint)b);
                v.StoreUnsafe(ref rv, (nuint)b);
                var vhat = v;
                if (TEstimate.Mean) vhat = v / k.Occupancy.GetVector512(b);
                var den = Vector512.Sqrt(vhat) * k.InvSqrtBc2 + k.Epsilon;
                Vector512<float> q;
                if (TFirst.Present)
                {
                    var m = k.Beta1 * Vector512.LoadUnsafe(ref rm, (nuint)b) + k.C1 * Vector512.LoadUnsafe(ref rsm, (nuint)b);
                    m.StoreUnsafe(ref rm, (nuint)b);
                    q = k.LearningRate * (m * k.InvBc1) / den;
                }
                else q = k.LearningRate / den;

                // Every row's parameters in these buckets (the first pass's rows when grouped), exactly as ApplyTile does it.
                if (grouped) q.StoreUnsafe(ref rq, (nuint)(b - chunk));
                ApplyVector<TRow>(ref rp, ref rg, ref rrho, ref rsig, rows, buckets, lastRowLength, b, q, vd, TFirst.Present, 0, firstPassEnd);
            }
            // The chunk's other passes: the same coefficients, the next rows; every parameter is still written once, by its bucket.
            for (int r0 = firstPassEnd; r0 < rows; r0 += passRows)
            {
                int r1 = Math.Min(r0 + passRows, rows);
                for (int b = chunk; b < chunkEnd; b += W)
                    ApplyVector<TRow>(ref rp, ref rg, ref rrho, ref rsig, rows, buckets, lastRowLength, b, Vector512.LoadUnsafe(ref rq, (nuint)(b - chunk)), vd,
                                      TFirst.Present, r0, r1);
            }
        }
        return vectorEnd;
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
    /// Phase 2 (parameters) for buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>) of the Rotation view, all rows at once:
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
        // β1 = 0 reads g as well (2·R streams per vector): without prefetch that was slower than row by row, with the
        // prefetch below slightly faster (docs/benchmarks.md, "What changed two rounds ago", item 3).
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
            // Not a step's kernel since phase 2 was fused (the tests call it, and a tile's last partial vector, which has no
            // whole vector): CpuTuning.Default's phase-2 distance.
            ApplyVector<Ahead256>(ref rp, ref rg, ref rrho, ref rsig, rows, buckets, lastRowLength, b, Vector512.LoadUnsafe(ref rq, (nuint)b), vd, momentum, 0, rows);
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

    /// <summary>
    /// Phase 2 for the 16 buckets [b, b + 16) whose coefficient is <paramref name="q"/>: every row's parameters that land there,
    /// row r at column (b − ρ_r) mod k (β1 ≠ 0: p ← p·decay − σ_r·q; β1 = 0: p ← p·decay − g·q). A row whose 16 columns
    /// straddle its wrap point or the ragged last row's end is done lane by lane. Shared by <see cref="ApplyTile"/> and
    /// <see cref="UpdateApplyTile"/>, which inlines it with <paramref name="momentum"/> a constant.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ApplyVector<TAhead>(ref float rp, ref float rg, ref int rrho, ref int rsig, int rows, int buckets, int lastRowLength,
                                            int b, Vector512<float> q, Vector512<float> vd, bool momentum, int rowStart, int rowEnd) where TAhead : struct, IPrefetchDistance
    {
        const int W = 16;
        for (int r = rowStart; r < rowEnd; r++)
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
                if (TAhead.Ahead != 0 && System.Runtime.Intrinsics.X86.Sse.IsSupported && c + TAhead.Ahead < len)
                {
                    System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rp, i + (nuint)TAhead.Ahead)));
                    if (!momentum) System.Runtime.Intrinsics.X86.Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rg, i + (nuint)TAhead.Ahead)));
                }
                var pv = Vector512.LoadUnsafe(ref rp, i);
                pv = momentum ? pv * vd - Vector512.Create(sign) * q : pv * vd - Vector512.LoadUnsafe(ref rg, i) * q;
                pv.StoreUnsafe(ref rp, i);
            }
            else
            {
                // wrap point or ragged end inside this vector: lane by lane
                float decay = vd.ToScalar();
                for (int j = 0; j < W; j++)
                {
                    int cj = b + j - rho;
                    if (cj < 0) cj += buckets;
                    if (cj >= len) continue;
                    nuint ij = rowOffset + (nuint)cj;
                    float qj = q.GetElement(j);
                    Unsafe.Add(ref rp, ij) = momentum ? Unsafe.Add(ref rp, ij) * decay - sign * qj : Unsafe.Add(ref rp, ij) * decay - Unsafe.Add(ref rg, ij) * qj;
                }
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
