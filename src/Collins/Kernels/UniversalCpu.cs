using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Collins.Kernels;

/// <summary>
/// CPU primitives for the Universal-layout kernels the source generator emits: bucket h1(i) = ((A·i + B) mod (2^31 − 1)) mod k,
/// sign h2(i) = 1 − 2·(((SignA·i + SignB) mod (2^31 − 1)) &amp; 1).
/// </summary>
/// <remarks>
/// <para><b>Workspace layout (β1 ≠ 0).</b> The two phase-1 sums of a bucket are kept side by side so that the random
/// read-modify-write of a bucket touches one cache line instead of two: with h = ⌊k/2⌋, bucket b &lt; h keeps
/// (ΣσG, Σg²) in SumM[2b], SumM[2b + 1]; bucket h ≤ b &lt; 2h keeps them in SumV[2(b − h)], SumV[2(b − h) + 1]; when k is
/// odd, bucket k − 1 keeps them in SumM[k − 1] and SumV[k − 1]. No memory beyond the base class's SumM/SumV (k floats
/// each) is used. Phase 2a leaves the bucket's update coefficient in the first float of its pair; phase 2b gathers it from there.
/// With β1 = 0 there is only SumV, indexed by bucket.</para>
/// <para><b>Determinism.</b> Phase 1 is split into a fixed number of tiles by <i>bucket range</i>: tile t scans every element in
/// index order and adds only those whose bucket lies in its range, so each bucket's sums are formed in index order, exactly as a
/// serial scatter would, whatever the number of tiles or threads. Each tile hashes every element (the hash is cheap next to a
/// cache miss) and software-prefetches the bucket pairs of a block of elements before it updates them.</para>
/// </remarks>
public static unsafe class UniversalCpu
{
    private const ulong P = 2147483647UL;
    private const int Block = 64;
    private static readonly Vector512<ulong> Iota = Vector512.Create(0UL, 1UL, 2UL, 3UL, 4UL, 5UL, 6UL, 7UL);

    /// <summary>The hash constants of one tensor and k, with Lemire's fast-modulo multiplier for k.</summary>
    public readonly struct Hash
    {
        private readonly ulong _a, _b, _sa, _sb, _m;
        private readonly uint _k;

        /// <summary>Creates the hash for <paramref name="buckets"/> buckets.</summary>
        public Hash(uint a, uint b, uint signA, uint signB, int buckets)
        {
            if (buckets <= 0) throw new ArgumentOutOfRangeException(nameof(buckets));
            _a = a; _b = b; _sa = signA; _sb = signB; _k = (uint)buckets;
            _m = ulong.MaxValue / (uint)buckets + 1;
        }

        /// <summary>h1(i), equal to <c>(int)(x % k)</c> after the Mersenne reduction (Lemire: exact for x, k &lt; 2^32).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public int Bucket(int i)
        {
            ulong x = _a * (uint)i + _b;
            x = (x & P) + (x >> 31);
            x = (x & P) + (x >> 31);
            if (x >= P) x -= P;
            return (int)Math.BigMul(_m * x, _k, out _);
        }

        /// <summary>
        /// h1 (into <paramref name="bucket"/>) and, when <paramref name="sign"/> is not null, h2 as ±1 (into <paramref name="sign"/>) of the
        /// <see cref="Block"/> indices i0, i0 + 1, …: 8 at a time in Vector512 (64-bit products, Mersenne reduction by shifts, then
        /// mod k in double: x &lt; 2^31 and k &lt; 2^31, so floor(x/k) from x·(1/k) is off by at most one and is corrected exactly).
        /// Indices past the tensor's end are hashed too (harmless: the caller ignores them).
        /// </summary>
        internal void HashBlock(int i0, long* bucket, double* sign)
        {
            if (!Vector512.IsHardwareAccelerated)
            {
                for (int j = 0; j < Block; j++)
                {
                    bucket[j] = Bucket(i0 + j);
                    if (sign != null) sign[j] = Sign(i0 + j);
                }
                return;
            }
            var pP = Vector512.Create(P);
            var va = Vector512.Create(_a); var vb = Vector512.Create(_b);
            var vsa = Vector512.Create(_sa); var vsb = Vector512.Create(_sb);
            var kd = Vector512.Create((double)_k); var invk = Vector512.Create(1.0 / _k);
            var one = Vector512.Create(1UL);
            for (int j = 0; j < Block; j += 8)
            {
                var idx = Vector512.Create((ulong)(uint)(i0 + j)) + Iota;
                var x = va * idx + vb;
                x = (x & pP) + (x >> 31);
                x = (x & pP) + (x >> 31);
                x -= Vector512.GreaterThanOrEqual(x, pP) & pP;
                var xd = Vector512.ConvertToDouble(x);
                var r = xd - Vector512.Floor(xd * invk) * kd;
                r += Vector512.ConditionalSelect(Vector512.LessThan(r, Vector512<double>.Zero), kd, Vector512<double>.Zero);
                r -= Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(r, kd), kd, Vector512<double>.Zero);
                Vector512.ConvertToInt64(r).Store(bucket + j);
                if (sign != null)
                {
                    var y = vsa * idx + vsb;
                    y = (y & pP) + (y >> 31);
                    y = (y & pP) + (y >> 31);
                    y -= Vector512.GreaterThanOrEqual(y, pP) & pP;
                    (Vector512<double>.One - Vector512.ConvertToDouble(y & one) * 2.0).Store(sign + j);
                }
            }
        }

        /// <summary>h2(i) as ±1f.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Sign(int i)
        {
            ulong x = _sa * (uint)i + _sb;
            x = (x & P) + (x >> 31);
            x = (x & P) + (x >> 31);
            if (x >= P) x -= P;
            return (x & 1UL) == 0UL ? 1f : -1f;
        }
    }

    /// <summary>Pointer to the pair (Σσg, Σg²) of bucket <paramref name="b"/>; the second float is at <paramref name="second"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float* Pair(float* pm, float* pv, int b, int h, out float* second)
    {
        // branchless (b is random: a branch on b < h would mispredict half the time)
        nint lower = (nint)((b - h) >> 31);                                   // −1 when b < h, else 0
        float* basePtr = (float*)((nint)pv + (((nint)pm - (nint)pv) & lower));
        float* first = basePtr + 2 * (b - (h & ~(int)lower));
        second = first + 1;
        if (b >= 2 * h) { first = pm + b; second = pv + b; }    // odd k: the last bucket
        return first;
    }

    /// <summary>Bench probe: time of hashing n indices in blocks (ms).</summary>
    public static double TimeHashBlocks(in Hash hash, int n)
    {
        long* bk = stackalloc long[Block]; double* sg = stackalloc double[Block];
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp(); long acc = 0;
        for (int i0 = 0; i0 < n; i0 += Block) { hash.HashBlock(i0, bk, sg); acc += bk[3]; }
        double ms = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        return acc == 42 ? ms + 1e-9 : ms;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(long* bk, float* pm, float* pv, int h, int lo, uint span, bool pairs)
    {
        if (!Sse.IsSupported) return;
        for (int j = 0; j < Block; j++)
        {
            int b = (int)bk[j];
            if ((uint)(b - lo) < span) Sse.Prefetch0(pairs ? Pair(pm, pv, b, h, out _) : pv + b);
        }
    }

    /// <summary>
    /// Phase 1, tile <paramref name="tile"/> of <paramref name="tiles"/> (buckets [t·k/T, (t+1)·k/T)): zeroes the tile's sums, then
    /// adds h2(i)·g[i] and g[i]² of every element whose bucket is in range, in index order. Returns false when a Σg² of the tile is
    /// not finite. <paramref name="sumM"/> is empty when β1 = 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool Accumulate(int tile, int tiles, ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV, in Hash hash, int buckets)
    {
        bool hasM = sumM.Length != 0;
        if ((uint)tile >= (uint)tiles || sumV.Length != buckets || (hasM && sumM.Length != buckets))
            throw new ArgumentException("Universal phase-1 arguments disagree with the buffers.");
        int lo = (int)((long)buckets * tile / tiles), hi = (int)((long)buckets * (tile + 1) / tiles);
        int h = buckets >> 1, n = gradient.Length;
        var hs = hash;
        fixed (float* pg = gradient)
        fixed (float* pm = sumM)
        fixed (float* pv = sumV)
        {
            for (int b = lo; b < hi; b++)
            {
                if (hasM) { float* f = Pair(pm, pv, b, h, out float* s); *f = 0f; *s = 0f; }
                else pv[b] = 0f;
            }
            long* bkA = stackalloc long[Block], bkB = stackalloc long[Block];
            double* sgA = stackalloc double[Block], sgB = stackalloc double[Block];
            uint span = (uint)(hi - lo);
            int* sel = stackalloc int[Block];
            // Software pipeline: hash and prefetch block j + 1 while block j is added.
            if (n > 0)
            {
                hs.HashBlock(0, bkA, hasM ? sgA : null);
                Prefetch(bkA, pm, pv, h, lo, span, hasM);
            }
            for (int i0 = 0; i0 < n; i0 += Block)
            {
                if (i0 + Block < n)
                {
                    hs.HashBlock(i0 + Block, bkB, hasM ? sgB : null);
                    Prefetch(bkB, pm, pv, h, lo, span, hasM);
                }
                int cnt = Math.Min(Block, n - i0), kept = 0;
                for (int j = 0; j < cnt; j++)                       // branchless compaction of the in-range elements
                {
                    sel[kept] = j;
                    kept += (uint)((int)bkA[j] - lo) < span ? 1 : 0;
                }
                for (int e = 0; e < kept; e++)
                {
                    int j = sel[e];
                    int b = (int)bkA[j];
                    float x = pg[i0 + j];
                    if (hasM)
                    {
                        float* f = Pair(pm, pv, b, h, out float* s);
                        *f += (float)sgA[j] * x;
                        *s += x * x;
                    }
                    else pv[b] += x * x;
                }
                long* tb = bkA; bkA = bkB; bkB = tb;
                double* ts = sgA; sgA = sgB; sgB = ts;
            }
            bool finite = true;
            for (int b = lo; b < hi; b++)
            {
                float v;
                if (hasM) { Pair(pm, pv, b, h, out float* s); v = *s; } else v = pv[b];
                finite &= float.IsFinite(v);
            }
            return finite;
        }
    }

    /// <summary>
    /// Phase 2a for buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>): m ← β1·m + (1−β1)·Σσg, v ← β2·v + (1−β2)·Σg²,
    /// v̂ = v (or v / occupancy[b] when <paramref name="occupancy"/> is given), and the coefficient lr·m·invBc1 / (√v̂·invSqrtBc2 + ε)
    /// (β1 = 0: lr / (√v̂·invSqrtBc2 + ε)) replaces the bucket's first sum. Same arithmetic as <see cref="RotationCpu.UpdateBuckets(Span{float}, Span{float}, Span{float}, Span{float}, int, int, double, double, float, in StepScalars)"/>;
    /// (1 − β) are computed in double and rounded to float once.
    /// </summary>
    public static void UpdateBuckets(Span<float> firstMoment, Span<float> secondMoment, Span<float> sumM, Span<float> sumV,
                                     int bucketStart, int bucketEnd, double beta1, double beta2, float epsilon, in StepScalars s, float[]? occupancy)
    {
        bool hasM = firstMoment.Length != 0;
        int k = secondMoment.Length, h = k >> 1;
        if ((uint)bucketStart > (uint)bucketEnd || bucketEnd > k || sumV.Length != k || (hasM && (sumM.Length != k || firstMoment.Length != k))
            || (occupancy is not null && occupancy.Length != k))
            throw new ArgumentException("Universal phase-2 arguments disagree with the buffers.");
        float b1 = (float)beta1, c1 = (float)(1.0 - beta1), b2 = (float)beta2, c2 = (float)(1.0 - beta2);
        float lr = s.LearningRate, ib1 = s.InvBiasCorrection1, isb2 = s.InvSqrtBiasCorrection2;
        fixed (float* pm = sumM)
        fixed (float* pv = sumV)
        {
            for (int b = bucketStart; b < bucketEnd; b++)
            {
                if (hasM)
                {
                    float* f = Pair(pm, pv, b, h, out float* sv);
                    float m = b1 * firstMoment[b] + c1 * *f;
                    float v = b2 * secondMoment[b] + c2 * *sv;
                    firstMoment[b] = m; secondMoment[b] = v;
                    float vhat = occupancy is null ? v : v / occupancy[b];
                    *f = lr * (m * ib1) / (MathF.Sqrt(vhat) * isb2 + epsilon);
                }
                else
                {
                    float v = b2 * secondMoment[b] + c2 * pv[b];
                    secondMoment[b] = v;
                    float vhat = occupancy is null ? v : v / occupancy[b];
                    pv[b] = lr / (MathF.Sqrt(vhat) * isb2 + epsilon);
                }
            }
        }
    }

    /// <summary>
    /// Phase 2b for elements [<paramref name="start"/>, <paramref name="end"/>): β1 ≠ 0 (<paramref name="gradient"/> empty):
    /// p ← p·decay − h2(i)·q[h1(i)]; β1 = 0: p ← p·decay − g·w[h1(i)], with the coefficients phase 2a left in the workspace.
    /// Bucket coefficients of a block of elements are prefetched before they are gathered.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ApplyElements(Span<float> parameters, ReadOnlySpan<float> gradient, ReadOnlySpan<float> sumM, ReadOnlySpan<float> sumV,
                                     int start, int end, in Hash hash, int buckets, float decay)
    {
        bool momentum = gradient.Length == 0;
        int h = buckets >> 1;
        if ((uint)start > (uint)end || end > parameters.Length || sumV.Length != buckets || (momentum && sumM.Length != buckets)
            || (!momentum && gradient.Length != parameters.Length))
            throw new ArgumentException("Universal phase-2 arguments disagree with the buffers.");
        var hs = hash;
        long* bkA = stackalloc long[Block], bkB = stackalloc long[Block];
        double* sgA = stackalloc double[Block], sgB = stackalloc double[Block];
        fixed (float* pp = parameters)
        fixed (float* pg = gradient)
        fixed (float* pm = sumM)
        fixed (float* pv = sumV)
        {
            if (start < end)
            {
                hs.HashBlock(start, bkA, momentum ? sgA : null);
                Prefetch(bkA, pm, pv, h, 0, (uint)buckets, momentum);
            }
            for (int i0 = start; i0 < end; i0 += Block)
            {
                if (i0 + Block < end)
                {
                    hs.HashBlock(i0 + Block, bkB, momentum ? sgB : null);
                    Prefetch(bkB, pm, pv, h, 0, (uint)buckets, momentum);
                }
                int cnt = Math.Min(Block, end - i0);
                if (momentum)
                    for (int j = 0; j < cnt; j++)
                    {
                        int i = i0 + j;
                        pp[i] = pp[i] * decay - (float)sgA[j] * *Pair(pm, pv, (int)bkA[j], h, out _);
                    }
                else
                    for (int j = 0; j < cnt; j++)
                    {
                        int i = i0 + j;
                        pp[i] = pp[i] * decay - pg[i] * pv[bkA[j]];
                    }
                long* tb = bkA; bkA = bkB; bkB = tb;
                double* ts = sgA; sgA = sgB; sgB = ts;
            }
        }
    }
}
