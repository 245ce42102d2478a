using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Collins.Hashing;

namespace Collins.Kernels;

/// <summary>
/// CPU kernels of the Universal layout: bucket h1(i) = ((A·i + B) mod p) mod k and sign
/// h2(i) = 1 − 2·(((SignA·i + SignB) mod p) &amp; 1), p = 2^31 − 1. The generated optimizers call them with
/// their tensor's literal constants; the run-time <see cref="CountSketchAdam"/> calls them with its plan's.
/// </summary>
/// <remarks>
/// <para>
/// The hashes are computed 16 indices at a time in AVX-512 registers, incrementally: lane j holds
/// x = (A·i + B) mod p for its index i, and the next block adds 16·A mod p with one conditional subtract
/// (a vector minimum of x and x − p); x mod k goes through double precision (x &lt; 2^31, so the quotient is
/// at most one too small) and one minimum-based correction. Results are the integers of
/// <c>HashDerivation.UniversalBucket</c>/<c>UniversalSign</c>, bit for bit (tested against them).
/// </para>
/// <para>
/// The scatter of phase 1 stays a scalar read-modify-write in index order, so each bucket's sum is formed in
/// exactly the order of the serial loop i = 0..d−1 and the result never depends on tiling or threads. To use
/// more than one core without atomics or extra memory, phase 1 splits the <em>buckets</em>: the tile for buckets
/// [b0, b1) hashes every index and adds only the entries landing in its range (see <see cref="ScatterTiles"/>).
/// The random read-modify-write into a sketch larger than L2 is what costs here, not the hashing; see
/// docs/benchmarks.md for the measured floor of that access pattern on the development machine.
/// </para>
/// </remarks>
public static class UniversalCpu
{
    private const ulong P = HashDerivation.MersennePrime;

    /// <summary>Below this many entries phase 1 runs as one tile: re-hashing every index per tile would cost more than it saves.</summary>
    public const int SplitThreshold = 1 << 20;

    /// <summary>
    /// How many bucket-range tiles phase 1 of a tensor of <paramref name="length"/> entries uses with
    /// <paramref name="maxThreads"/> threads: one per usable core for large tensors, otherwise 1. Any count gives
    /// bit-identical sums (each bucket is still summed in index order).
    /// </summary>
    public static int ScatterTiles(int length, int maxThreads)
        => length < SplitThreshold ? 1 : Math.Max(1, Math.Min(maxThreads, Environment.ProcessorCount));

    /// <summary>Whether the vector path runs (AVX-512 F and DQ: 64-bit lanes, unsigned conversions).</summary>
    public static bool IsVectorized => Vector512.IsHardwareAccelerated && Avx512DQ.IsSupported && Avx2.IsSupported;

    /// <summary>
    /// Phase 1 as the body of a <see cref="TileRunner"/> kernel: tile <paramref name="tile"/> of <c>buffers.TileCount</c> equal
    /// bucket ranges (<see cref="AccumulateBuckets(ReadOnlySpan{float}, Span{float}, Span{float}, int, int, int, uint, uint, uint, uint)"/>
    /// over the buffers' gradient and sums; <c>buffers.SumM</c> is empty when β1 = 0). Returns false when a sum of the range is not finite.
    /// </summary>
    public static bool AccumulateTile(int tile, in TileBuffers buffers, int buckets, uint a, uint b, uint signA, uint signB)
    {
        int tiles = buffers.TileCount;
        int b0 = (int)((long)buckets * tile / tiles), b1 = (int)((long)buckets * (tile + 1) / tiles);
        return AccumulateBuckets(buffers.Gradient, buffers.SumM, buffers.SumV, b0, b1, buckets, a, b, signA, signB);
    }

    /// <summary>
    /// Phase 2b as the body of a <see cref="TileRunner"/> kernel: entries [tile·<paramref name="tileLength"/>, …) after the bucket
    /// update left each bucket's coefficient in the workspace: in <c>buffers.SumM</c> (β1 ≠ 0, signed by h2) or, when SumM is
    /// empty (β1 = 0), in <c>buffers.SumV</c>, multiplied by g. See
    /// <see cref="ApplyElements(Span{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, float, int, uint, uint, uint, uint)"/>.
    /// </summary>
    public static void ApplyTile(int tile, in TileBuffers buffers, int tileLength, float decay, int buckets,
                                 uint a, uint b, uint signA, uint signB)
    {
        int start = tile * tileLength, end = Math.Min(start + tileLength, buffers.Parameters.Length);
        bool momentum = buffers.SumM.Length != 0;
        ApplyElements(buffers.Parameters, momentum ? default : buffers.Gradient, momentum ? buffers.SumM : buffers.SumV,
                      start, end, decay, buckets, a, b, signA, signB);
    }

    /// <summary>
    /// Phase 1 for buckets [<paramref name="bucketStart"/>, <paramref name="bucketEnd"/>): zeroes that range of the sums, then for
    /// i = 0..d−1 in order adds h2(i)·g[i] to sumM[h1(i)] (when <paramref name="sumM"/> is not empty; it is empty when β1 = 0)
    /// and g[i]² to sumV[h1(i)] for every i whose bucket lies in the range. Returns false when a sumV of the range is not finite.
    /// </summary>
    public static bool AccumulateBuckets(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                         int bucketStart, int bucketEnd, int buckets,
                                         uint a, uint b, uint signA, uint signB)
        => AccumulateBuckets(gradient, sumM, sumV, bucketStart, bucketEnd, buckets, a, b, signA, signB, IsVectorized);

    /// <summary><see cref="AccumulateBuckets(ReadOnlySpan{float}, Span{float}, Span{float}, int, int, int, uint, uint, uint, uint)"/> with the vector path on or off (tests run both).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe bool AccumulateBuckets(ReadOnlySpan<float> gradient, Span<float> sumM, Span<float> sumV,
                                                  int bucketStart, int bucketEnd, int buckets,
                                                  uint a, uint b, uint signA, uint signB, bool vectorize)
    {
        bool hasM = sumM.Length != 0;
        int d = gradient.Length;
        if (buckets <= 0 || (uint)bucketStart > (uint)bucketEnd || bucketEnd > buckets || sumV.Length != buckets
            || (hasM && sumM.Length != buckets) || a == 0 || a >= P || b >= P || signA == 0 || signA >= P || signB >= P)
            throw new ArgumentException("Universal tile arguments disagree with the buffers.");
        if (hasM) sumM[bucketStart..bucketEnd].Clear();
        sumV[bucketStart..bucketEnd].Clear();
        uint lo = (uint)bucketStart, width = (uint)(bucketEnd - bucketStart);
        bool all = bucketStart == 0 && bucketEnd == buckets;
        ref float rg = ref MemoryMarshal.GetReference(gradient);
        ref float rm = ref MemoryMarshal.GetReference(sumM);
        ref float rv = ref MemoryMarshal.GetReference(sumV);
        int i = 0;
        if (vectorize && IsVectorized && d >= 16)
        {
            var h = new VectorHash(a, b, signA, signB, buckets, 0);
            int* bk = stackalloc int[16];
            float* sg = stackalloc float[16];
            float* sq = stackalloc float[16];
            for (; i <= d - 16; i += 16)
            {
                var g = Vector512.LoadUnsafe(ref rg, (nuint)i);
                var bucket = h.Buckets();
                bucket.AsInt32().Store(bk);
                (g.AsUInt32() ^ h.SignBits()).AsSingle().Store(sg);
                (g * g).Store(sq);
                h.Advance();
                if (all)
                {
                    for (int j = 0; j < 16; j++)
                    {
                        int t = bk[j];
                        if (hasM) Unsafe.Add(ref rm, t) += sg[j];
                        Unsafe.Add(ref rv, t) += sq[j];
                    }
                }
                else
                {
                    uint mask = (uint)Vector512.ExtractMostSignificantBits(
                        Vector512.LessThan(bucket - Vector512.Create(lo), Vector512.Create(width)));
                    while (mask != 0)
                    {
                        int j = BitOperations.TrailingZeroCount(mask);
                        mask &= mask - 1;
                        int t = bk[j];
                        if (hasM) Unsafe.Add(ref rm, t) += sg[j];
                        Unsafe.Add(ref rv, t) += sq[j];
                    }
                }
            }
        }
        for (; i < d; i++)
        {
            int t = HashDerivation.UniversalBucket(a, b, buckets, i);
            if ((uint)(t - bucketStart) >= width) continue;
            float x = Unsafe.Add(ref rg, i);
            if (hasM) Unsafe.Add(ref rm, t) += HashDerivation.UniversalSign(signA, signB, i) * x;
            Unsafe.Add(ref rv, t) += x * x;
        }
        return DenseAdamWCpu.AllFinite(sumV[bucketStart..bucketEnd]);
    }

    /// <summary>
    /// Phase 2b for entries [<paramref name="start"/>, <paramref name="end"/>): p[i] ← p[i]·decay − h2(i)·q[h1(i)] when
    /// <paramref name="gradient"/> is empty (β1 ≠ 0: q holds lr·m̂/(√v̂ + ε) per bucket without the sign), or
    /// p[i] ← p[i]·decay − g[i]·q[h1(i)] when it is given (β1 = 0: q holds lr/(√v̂ + ε)). The same two roundings as the scalar form.
    /// </summary>
    public static void ApplyElements(Span<float> parameters, ReadOnlySpan<float> gradient, ReadOnlySpan<float> q,
                                     int start, int end, float decay, int buckets,
                                     uint a, uint b, uint signA, uint signB)
        => ApplyElements(parameters, gradient, q, start, end, decay, buckets, a, b, signA, signB, IsVectorized);

    /// <summary><see cref="ApplyElements(Span{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, float, int, uint, uint, uint, uint)"/> with the vector path on or off (tests run both).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void ApplyElements(Span<float> parameters, ReadOnlySpan<float> gradient, ReadOnlySpan<float> q,
                                              int start, int end, float decay, int buckets,
                                              uint a, uint b, uint signA, uint signB, bool vectorize)
    {
        bool withG = gradient.Length != 0;
        if (buckets <= 0 || q.Length != buckets || (uint)start > (uint)end || end > parameters.Length
            || (withG && gradient.Length != parameters.Length) || a == 0 || a >= P || b >= P || signA == 0 || signA >= P || signB >= P)
            throw new ArgumentException("Universal tile arguments disagree with the buffers.");
        ref float rp = ref MemoryMarshal.GetReference(parameters);
        ref float rg = ref MemoryMarshal.GetReference(gradient);
        int i = start;
        fixed (float* pq = q)
        {
            if (vectorize && IsVectorized && end - start >= 16)
            {
                var h = new VectorHash(a, b, signA, signB, buckets, start);
                var vd = Vector512.Create(decay);
                for (; i <= end - 16; i += 16)
                {
                    var bucket = h.Buckets().AsInt32();
                    var f = Vector512.Create(Avx2.GatherVector256(pq, bucket.GetLower(), 4), Avx2.GatherVector256(pq, bucket.GetUpper(), 4));
                    var p = Vector512.LoadUnsafe(ref rp, (nuint)i);
                    var step = withG ? Vector512.LoadUnsafe(ref rg, (nuint)i) * f : (f.AsUInt32() ^ h.SignBits()).AsSingle();
                    (p * vd - step).StoreUnsafe(ref rp, (nuint)i);
                    h.Advance();
                }
            }
            for (; i < end; i++)
            {
                float f = pq[HashDerivation.UniversalBucket(a, b, buckets, i)];
                float step = withG ? Unsafe.Add(ref rg, i) * f : HashDerivation.UniversalSign(signA, signB, i) * f;
                Unsafe.Add(ref rp, i) = Unsafe.Add(ref rp, i) * decay - step;
            }
        }
    }

    /// <summary>
    /// The bucket and sign hashes of 16 consecutive indices, kept incrementally: two registers of eight 64-bit lanes for
    /// (A·i + B) mod p and two for (SignA·i + SignB) mod p.
    /// </summary>
    private struct VectorHash
    {
        private Vector512<ulong> _x0, _x1, _y0, _y1;
        private readonly Vector512<ulong> _stepX, _stepY, _p, _k;
        private readonly Vector512<double> _invK;

        public VectorHash(uint a, uint b, uint signA, uint signB, int buckets, int start)
        {
            Span<ulong> lanes = stackalloc ulong[16], signs = stackalloc ulong[16];
            for (int j = 0; j < 16; j++)
            {
                lanes[j] = HashDerivation.ModMersenne((ulong)a * (uint)(start + j) + b);
                signs[j] = HashDerivation.ModMersenne((ulong)signA * (uint)(start + j) + signB);
            }
            _x0 = Vector512.Create<ulong>(lanes[..8]); _x1 = Vector512.Create<ulong>(lanes[8..]);
            _y0 = Vector512.Create<ulong>(signs[..8]); _y1 = Vector512.Create<ulong>(signs[8..]);
            _stepX = Vector512.Create(HashDerivation.ModMersenne(16UL * a));
            _stepY = Vector512.Create(HashDerivation.ModMersenne(16UL * signA));
            _p = Vector512.Create(P);
            _k = Vector512.Create((ulong)buckets);
            _invK = Vector512.Create(1.0 / buckets);
        }

        /// <summary>h1 of the 16 current indices.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly Vector512<uint> Buckets() => Vector512.Narrow(Mod(_x0), Mod(_x1));

        /// <summary>h2 of the 16 current indices as a float sign mask: 0 for +1, 0x80000000 for −1.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly Vector512<uint> SignBits()
            => Vector512.Narrow(_y0 << 31, _y1 << 31) & Vector512.Create(0x80000000u);

        /// <summary>Moves every lane 16 indices on.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Advance()
        {
            _x0 = Next(_x0, _stepX); _x1 = Next(_x1, _stepX);
            _y0 = Next(_y0, _stepY); _y1 = Next(_y1, _stepY);
        }

        // x, step < p < 2^31: x + step < 2^32; subtract p when it reached p (x − p wraps above x otherwise).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly Vector512<ulong> Next(Vector512<ulong> x, Vector512<ulong> step)
        {
            var s = x + step;
            return Vector512.Min(s, s - _p);
        }

        // x mod k for x < 2^31. The double quotient x·(1/k) errs by less than 1/k, so its floor is exact or, when x is a
        // multiple of k, one too small (x = 1073790975, k = 81925 is such a case): then r = k, and the minimum of r and
        // r − k (which wraps above r whenever r < k) fixes it.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private readonly Vector512<ulong> Mod(Vector512<ulong> x)
        {
            var q = Vector512.ConvertToUInt64(Vector512.Floor(Vector512.ConvertToDouble(x) * _invK));
            var r = x - q * _k;
            return Vector512.Min(r, r - _k);
        }
    }
}
