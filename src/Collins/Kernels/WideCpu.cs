using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Collins.Kernels;

/// <summary>
/// AVX-512 bodies of the factored kernel's hot loops (<see cref="FactoredCpuKernel"/>, <see cref="BlockQuantizer"/>): 16 floats a
/// vector where <see cref="System.Numerics.Vector{T}"/> is 8 wide on most AVX-512 CPUs. Each computes, lane by lane, the same
/// IEEE float operations in the same order as the <see cref="System.Numerics.Vector{T}"/> and scalar paths it stands in for (and
/// every max is exact), so results are bit-identical whichever path runs on a machine: switching this path on or off changes no
/// float or code. (Across CPUs whose <see cref="System.Numerics.Vector{T}"/> has another width, sums the kernels form in
/// Vector&lt;T&gt; lanes, such as the factored row sums, are added in another order, as for every kind.)
/// </summary>
/// <remarks>
/// The quantised block update fuses what the fallback does in three passes over a block (dequantise with the EMA into a stack
/// buffer, the update, the store): one pass forms m, updates p and max |m|, keeping m in the buffer; a second stores the codes.
/// 8-bit codes widen with one sign extension (vpmovsxbd) and narrow with one truncation (vpmovdb, the value already clamped to
/// [−Q, Q]); the rounding stream's a·i + c advances by 16·a per vector instead of a multiply (arithmetic mod 2³², so the same words).
/// </remarks>
internal static class WideCpu
{
    private const int W = 16;   // Vector512<float>.Count

    /// <summary>
    /// Whether the wide paths run: AVX-512F hardware. Internal and settable so tests can run the fallback on the same inputs and
    /// compare bitwise (both paths compute the same values, so flipping it never changes a result).
    /// </summary>
    internal static bool Enabled = Vector512.IsHardwareAccelerated && Avx512F.IsSupported;

    /// <summary>The step's coefficients of a quantised block run: β1, (1 − β1)·s, the row's a = R[r]/mean(R), isb2, ε, 1/bc1, the decay and lr.</summary>
    internal readonly record struct QuantizedCoefficients(float Beta1, float OneMinusBeta1, float RowFactor, float InvSqrtBias2, float Epsilon,
                                                          float InvBias1, float Decay, float LearningRate);

    /// <summary>Whether a whole block of <paramref name="block"/> entries can take the wide quantised paths (16 entries a vector; 4 bits: 16 bytes of each half).</summary>
    public static bool FitsBlock(bool fourBit, int block) => Enabled && block % (fourBit ? 2 * W : W) == 0;

    /// <summary>
    /// A run of <paramref name="count"/> whole blocks from <paramref name="firstBlock"/>, all in one row (its a = R[r]/mean(R)), the
    /// first starting at column <paramref name="column"/>: per block, m ← β1·(q·step) + (1 − β1)·g, u = m·ibc1 / (√(a·col)·isb2 + ε),
    /// p ← p·decay − lr·u and max |m| in one pass (m kept in <paramref name="m"/>, one block of scratch), then the scale and the
    /// codes (<see cref="Quantize"/>). The operations of <see cref="BlockQuantizer.DequantizeEma"/>, the fallback's update loop and
    /// <see cref="BlockQuantizer.Quantize(ReadOnlySpan{float}, float, Span{byte}, bool, int, int, int, bool, ulong, int)"/>, in their order.
    /// </summary>
    public static void QuantizedRun(Span<byte> codes, Span<float> scales, bool fourBit, int block, int levels, int firstBlock, int count,
                                    ReadOnlySpan<float> g, Span<float> p, ReadOnlySpan<float> colEma, int column, in QuantizedCoefficients k,
                                    bool stochastic, uint wa, uint wc, Span<float> m)
    {
        long end = (long)(firstBlock + count) * block;
        if (block % (fourBit ? 2 * W : W) != 0 || m.Length != block || firstBlock < 0 || count < 0 || end > g.Length || end > p.Length
            || firstBlock + count > scales.Length || (fourBit ? end / 2 : end) > codes.Length || column < 0 || column + (long)count * block > colEma.Length)
            throw new ArgumentException("The wide quantised run takes whole blocks inside the tensor, its codes, scales and one row of columns.");
        ref sbyte rq = ref Unsafe.As<byte, sbyte>(ref MemoryMarshal.GetReference(codes));
        ref float rg = ref MemoryMarshal.GetReference(g), rp = ref MemoryMarshal.GetReference(p), rc = ref MemoryMarshal.GetReference(colEma);
        ref float rm = ref MemoryMarshal.GetReference(m);
        var beta1 = Vector512.Create(k.Beta1); var oneMinusBeta1 = Vector512.Create(k.OneMinusBeta1); var a = Vector512.Create(k.RowFactor);
        var isb2 = Vector512.Create(k.InvSqrtBias2); var eps = Vector512.Create(k.Epsilon); var ibc1 = Vector512.Create(k.InvBias1);
        var decay = Vector512.Create(k.Decay); var lr = Vector512.Create(k.LearningRate);
        int half = block >> 1;
        for (int b = firstBlock; b < firstBlock + count; b++)
        {
            int e0 = b * block;
            ref float bg = ref Unsafe.Add(ref rg, e0);
            ref float bp = ref Unsafe.Add(ref rp, e0);
            ref float bc = ref Unsafe.Add(ref rc, column + (b - firstBlock) * block);
            var step = Vector512.Create(scales[b] / levels);
            var vmax = Vector512<float>.Zero;
            if (!fourBit)
            {
                ref sbyte bq = ref Unsafe.Add(ref rq, e0);
                for (int j = 0; j < block; j += W)
                    vmax = Avx512F.Max(vmax, Entries(Avx512F.ConvertToVector512Int32(Vector128.LoadUnsafe(ref bq, (nuint)j)), (nuint)j,
                                                     ref bg, ref bc, ref bp, ref rm, step, beta1, oneMinusBeta1, a, isb2, eps, ibc1, decay, lr));
            }
            else
            {
                ref sbyte bq = ref Unsafe.Add(ref rq, e0 >> 1);
                for (int j = 0; j < half; j += W)
                {
                    // Byte j holds entry j (low nibble) and entry half + j (high nibble), two's complement: sign-extend the byte,
                    // then shift the low nibble to the top and back (arithmetic), or the byte down by 4.
                    var w = Avx512F.ConvertToVector512Int32(Vector128.LoadUnsafe(ref bq, (nuint)j));
                    vmax = Avx512F.Max(vmax, Entries(Vector512.ShiftRightArithmetic(Vector512.ShiftLeft(w, 28), 28), (nuint)j,
                                                     ref bg, ref bc, ref bp, ref rm, step, beta1, oneMinusBeta1, a, isb2, eps, ibc1, decay, lr));
                    vmax = Avx512F.Max(vmax, Entries(Vector512.ShiftRightArithmetic(w, 4), (nuint)(half + j),
                                                     ref bg, ref bc, ref bp, ref rm, step, beta1, oneMinusBeta1, a, isb2, eps, ibc1, decay, lr));
                }
            }
            // max |m|: every lane is a non-negative non-NaN float, so vmaxps in any order gives the fallback's value.
            var m8 = Avx.Max(vmax.GetLower(), vmax.GetUpper());
            var m4 = Sse.Max(m8.GetLower(), m8.GetUpper());
            m4 = Sse.Max(m4, Sse.Shuffle(m4, m4, 0b_01_00_11_10));
            float absmax = Sse.MaxScalar(m4, Sse.Shuffle(m4, m4, 0b_10_11_00_01)).ToScalar();
            float inv = BlockQuantizer.InverseStep(ref absmax, levels);
            scales[b] = absmax;
            QuantizeBlock(ref rm, block, inv, levels, fourBit, stochastic, wa, wc, e0, ref Unsafe.Add(ref rq, fourBit ? e0 >> 1 : e0));
        }
    }

    /// <summary>Entries j … j + 15 of a block from their codes <paramref name="q"/>: m stored, p updated (the fallback's operations lane by lane); returns |m|.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Entries(Vector512<int> q, nuint j, ref float g, ref float col, ref float p, ref float m,
                                            Vector512<float> step, Vector512<float> beta1, Vector512<float> oneMinusBeta1, Vector512<float> a,
                                            Vector512<float> isb2, Vector512<float> eps, Vector512<float> ibc1, Vector512<float> decay, Vector512<float> lr)
    {
        var x = Vector512.ConvertToSingle(q) * step;                                   // dequantised
        var mv = beta1 * x + oneMinusBeta1 * Vector512.LoadUnsafe(ref g, j);           // the EMA
        mv.StoreUnsafe(ref m, j);
        var den = Vector512.Sqrt(a * Vector512.LoadUnsafe(ref col, j)) * isb2 + eps;
        var u = mv * ibc1 / den;
        (Vector512.LoadUnsafe(ref p, j) * decay - lr * u).StoreUnsafe(ref p, j);
        return Vector512.Abs(mv);
    }

    /// <summary>
    /// Phase 1 of one factored row from its start, 16 entries a vector: g² of the row (the first <paramref name="columns"/>.Length
    /// entries of <paramref name="fromRow"/>, the gradient from the row's start on) added into <paramref name="columns"/> and into
    /// the fallback's 8-float row accumulator <paramref name="acc"/> (lane l: entries 8k + l in order of k; the first 8 floats of
    /// a vector are chunk 2k, the last 8 chunk 2k + 1, added in that order, as the 256-bit loop adds them), the gradient prefetched
    /// <typeparamref name="TAhead"/> floats ahead (<see cref="CpuTuning.FactoredPrefetch"/>) inside <paramref name="fromRow"/>; returns how many entries it did (a
    /// multiple of 16).
    /// </summary>
    public static unsafe int FactoredRowSquaresInto<TAhead>(Span<float> columns, ReadOnlySpan<float> fromRow, ref Vector256<float> acc)
        where TAhead : struct, IPrefetchDistance
    {
        int n = columns.Length;
        if (fromRow.Length < n) throw new ArgumentException("The wide factored row sums take a row and its columns of one length.");
        ref float rc = ref MemoryMarshal.GetReference(columns), rg = ref MemoryMarshal.GetReference(fromRow);
        int prefetchEnd = fromRow.Length - TAhead.Ahead;
        var a = acc;
        int c = 0;
        for (; c <= n - W; c += W)
        {
            nuint at = (nuint)c;
            if (TAhead.Ahead != 0 && Sse.IsSupported && c < prefetchEnd) Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rg, at + (nuint)TAhead.Ahead)));
            var x = Vector512.LoadUnsafe(ref rg, at);
            var sq = x * x;
            a += sq.GetLower();
            a += sq.GetUpper();
            (Vector512.LoadUnsafe(ref rc, at) + sq).StoreUnsafe(ref rc, at);
        }
        acc = a;
        return c;
    }

    /// <summary>
    /// The plain factored update of one row from its start, 16 entries a vector: p ← p·decay − lr·g / (√(a·col)·isb2 + ε) over the
    /// first <paramref name="col"/>.Length entries of <paramref name="gFromRow"/> and <paramref name="pFromRow"/> (g and p from the
    /// row's start on, prefetched <typeparamref name="TAhead"/> floats ahead (<see cref="CpuTuning.FactoredPrefetch"/>) inside them), the operations of
    /// <see cref="FactoredCpuKernel"/>'s <see cref="System.Numerics.Vector{T}"/> loop in their order (each entry is independent, so
    /// the width changes no bit); returns how many entries it did (a multiple of 16).
    /// </summary>
    public static unsafe int FactoredRowApply<TAhead>(ReadOnlySpan<float> col, ReadOnlySpan<float> gFromRow, Span<float> pFromRow, float a, float isb2, float eps,
                                                      float decay, float lr) where TAhead : struct, IPrefetchDistance
    {
        int n = col.Length;
        if (gFromRow.Length < n || pFromRow.Length != gFromRow.Length)
            throw new ArgumentException("The wide factored update takes a row's columns and g and p from the row's start, of one length.");
        ref float rc = ref MemoryMarshal.GetReference(col), rg = ref MemoryMarshal.GetReference(gFromRow), rp = ref MemoryMarshal.GetReference(pFromRow);
        int prefetchEnd = gFromRow.Length - TAhead.Ahead;
        var va = Vector512.Create(a); var visb2 = Vector512.Create(isb2); var veps = Vector512.Create(eps);
        var vdecay = Vector512.Create(decay); var vlr = Vector512.Create(lr);
        int c = 0;
        for (; c <= n - W; c += W)
        {
            nuint at = (nuint)c;
            if (TAhead.Ahead != 0 && Sse.IsSupported && c < prefetchEnd)
            {
                Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rg, at + (nuint)TAhead.Ahead)));
                Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rp, at + (nuint)TAhead.Ahead)));
            }
            var den = Vector512.Sqrt(va * Vector512.LoadUnsafe(ref rc, at)) * visb2 + veps;
            (Vector512.LoadUnsafe(ref rp, at) * vdecay - vlr * Vector512.LoadUnsafe(ref rg, at) / den).StoreUnsafe(ref rp, at);
        }
        return c;
    }

    /// <summary>
    /// Update clipping's u² = (g / (√(a·col)·isb2 + ε))² of one row from its start (the first <paramref name="col"/>.Length entries
    /// of <paramref name="gFromRow"/>, g from the row's start on, prefetched <typeparamref name="TAhead"/> floats ahead (<see cref="CpuTuning.FactoredPrefetch"/>) inside it), widened to double and added into the lanes of
    /// the fallback's two 8-float accumulators (<paramref name="lo"/>: entries 8k … 8k + 3, <paramref name="hi"/>: 8k + 4 … 8k + 7,
    /// each in order of k, exactly as the 256-bit loop adds them); returns how many entries it did (a multiple of 16).
    /// </summary>
    public static unsafe int FactoredRowSquares<TAhead>(ReadOnlySpan<float> col, ReadOnlySpan<float> gFromRow, float a, float isb2, float eps,
                                                        ref Vector256<double> lo, ref Vector256<double> hi) where TAhead : struct, IPrefetchDistance
    {
        int n = col.Length;
        if (gFromRow.Length < n) throw new ArgumentException("The wide factored squares take a row's columns and g from the row's start.");
        ref float rc = ref MemoryMarshal.GetReference(col), rg = ref MemoryMarshal.GetReference(gFromRow);
        int prefetchEnd = gFromRow.Length - TAhead.Ahead;
        var va = Vector512.Create(a); var visb2 = Vector512.Create(isb2); var veps = Vector512.Create(eps);
        // Lane l of acc is entry class l mod 8: the first 8 floats of a vector are chunk 2k, the last 8 chunk 2k + 1, added in that order.
        var acc = Vector512.Create(lo, hi);
        int c = 0;
        for (; c <= n - W; c += W)
        {
            nuint at = (nuint)c;
            if (TAhead.Ahead != 0 && Sse.IsSupported && c < prefetchEnd) Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref rg, at + (nuint)TAhead.Ahead)));
            var u = Vector512.LoadUnsafe(ref rg, at) / (Vector512.Sqrt(va * Vector512.LoadUnsafe(ref rc, at)) * visb2 + veps);
            var sq = u * u;
            acc += Avx512F.ConvertToVector512Double(sq.GetLower());
            acc += Avx512F.ConvertToVector512Double(sq.GetUpper());
        }
        lo = acc.GetLower();
        hi = acc.GetUpper();
        return c;
    }

    /// <summary>
    /// The codes of one whole block (<see cref="BlockQuantizer.Quantize(ReadOnlySpan{float}, float, Span{byte}, bool, int, int, int, bool, ulong, int)"/>'s
    /// vector path): q = clamp(⌊m·inv + r⌋, −Q, Q), r = ½ or the stream's u of entry start + j, into the block's bytes.
    /// </summary>
    public static void Quantize(ReadOnlySpan<float> m, float inv, int levels, bool fourBit, bool stochastic, uint a, uint c, int start, Span<byte> blockCodes)
    {
        int n = m.Length;
        if (n % (fourBit ? 2 * W : W) != 0 || blockCodes.Length != (fourBit ? n / 2 : n))
            throw new ArgumentException("The wide quantiser takes one whole block: m and its codes of matching lengths.");
        QuantizeBlock(ref MemoryMarshal.GetReference(m), n, inv, levels, fourBit, stochastic, a, c, start,
                      ref Unsafe.As<byte, sbyte>(ref MemoryMarshal.GetReference(blockCodes)));
    }

    /// <summary><see cref="Quantize"/> with its lengths checked by the caller: <paramref name="n"/> entries of m, their codes at <paramref name="target"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void QuantizeBlock(ref float rm, int n, float inv, int levels, bool fourBit, bool stochastic, uint a, uint c, int start, ref sbyte target)
    {
        var vinv = Vector512.Create(inv);
        var lo = Vector512.Create(-levels);
        var hi = Vector512.Create(levels);
        // a·i + c of lanes i = start + j + l, advanced by 16·a per vector (mod 2³², the same words as a multiply each time).
        var advance = Vector512.Create(unchecked(a * W));
        var h0 = Vector512.Create(unchecked(a * (uint)start + c)) + Iota * Vector512.Create(a);
        if (!fourBit)
        {
            for (int j = 0; j < n; j += W)
            {
                var q = Codes(Vector512.LoadUnsafe(ref rm, (nuint)j), vinv, lo, hi, stochastic, h0);
                h0 += advance;
                Avx512F.ConvertToVector128SByte(q).StoreUnsafe(ref target, (nuint)j);
            }
            return;
        }
        int half = n >> 1;
        var h1 = h0 + Vector512.Create(unchecked(a * (uint)half));
        for (int j = 0; j < half; j += W)
        {
            var ql = Codes(Vector512.LoadUnsafe(ref rm, (nuint)j), vinv, lo, hi, stochastic, h0);
            var qh = Codes(Vector512.LoadUnsafe(ref rm, (nuint)(half + j)), vinv, lo, hi, stochastic, h1);
            h0 += advance;
            h1 += advance;
            Avx512F.ConvertToVector128SByte((ql & Vector512.Create(0x0F)) | Vector512.ShiftLeft(qh, 4)).StoreUnsafe(ref target, (nuint)j);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Codes(Vector512<float> m, Vector512<float> inv, Vector512<int> lo, Vector512<int> hi, bool stochastic, Vector512<uint> h)
    {
        var r = stochastic ? Uniform(h) : Vector512.Create(0.5f);
        var y = Vector512.Floor(m * inv + r);
        return Vector512.Min(Vector512.Max(Vector512.ConvertToInt32(y), lo), hi);
    }

    /// <summary><see cref="BlockQuantizer.Uniform(uint, uint, int)"/> of 16 entries from their words a·i + c.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Uniform(Vector512<uint> h)
    {
        h ^= Vector512.ShiftRightLogical(h, 16);
        h *= Vector512.Create(0x85EBCA6BU);
        h ^= Vector512.ShiftRightLogical(h, 13);
        h *= Vector512.Create(0xC2B2AE35U);
        h ^= Vector512.ShiftRightLogical(h, 16);
        return Vector512.ConvertToSingle(Vector512.ShiftRightLogical(h, 8).AsInt32()) * Vector512.Create(1f / (1 << 24));
    }

    private static readonly Vector512<uint> Iota = Vector512.Create(0u, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}
