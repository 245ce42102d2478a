using System.Numerics;
using System.Runtime.InteropServices;
using Collins.Hashing;

namespace Collins.Kernels;

/// <summary>
/// The storage of a block-quantised first moment (<see cref="FirstMomentStorage.Quantized8"/>, <see cref="FirstMomentStorage.Quantized4"/>):
/// signed integer codes q in [−Q, Q] and one fp32 scale per block of B entries, m = q·(scale / Q); and the counter-based random
/// bits of stochastic rounding. The kernels and the reference both read and write codes through this class (the storage
/// format is defined once, like the hash constants); each writes its own arithmetic.
/// </summary>
/// <remarks>
/// <para>Codes: 8 bits store q as a signed byte at entry i (d bytes). 4 bits store q as a two's-complement nibble, block-planar
/// so that a block dequantises with whole-vector shifts: entry j of block b lies in byte b·B/2 + (j mod B/2), in the low
/// nibble for j &lt; B/2 and the high nibble otherwise (blocks·B/2 bytes; the last block's unused nibbles stay 0). An all-zero
/// array is m = 0; the byte −128 and the nibble −8 never occur.</para>
/// <para>Random bits: u(key, t, i) = the top 24 bits of MurmurHash3's 32-bit finaliser of a·i + c (mod 2³²), / 2²⁴, in [0, 1),
/// where a (odd) and c are the two halves of SplitMix64's finaliser of key ⊕ t·2³², and key is
/// <see cref="HashDerivation.TensorKey"/> of (seed, tensor name) with a constant of its own. Within a step the map i ↦ u is
/// injective before the truncation (an odd multiplier and a bijective finaliser); it is one value per (tensor, step, entry),
/// whatever thread computes it, and the same in the vector and scalar paths (32-bit integer arithmetic only).</para>
/// </remarks>
internal static class BlockQuantizer
{
    private const ulong StreamSalt = 0x5155414E54495A45UL;   // "QUANTIZE": keeps these bits apart from the hash constants
    private const ulong Mix1 = 0xBF58476D1CE4E5B9UL, Mix2 = 0x94D049BB133111EBUL;
    private const float InvTwo24 = 1f / (1 << 24);

    /// <summary>The key of a tensor's stochastic-rounding stream.</summary>
    public static ulong StreamKey(long seed, string tensorName) => HashDerivation.TensorKey(seed, tensorName) ^ StreamSalt;

    /// <summary>u(key, step, index) in [0, 1): the random offset of stochastic rounding for one entry of one step.</summary>
    public static float Uniform(ulong key, int step, int index)
    {
        StepWords(key, step, out uint a, out uint c);
        return Uniform(a, c, index);
    }

    /// <summary>
    /// u for one entry from the step's words a and c (<see cref="StepWords"/>): 32-bit integer arithmetic only, so the device
    /// kernels call it too (the host forms a and c once per step).
    /// </summary>
    public static float Uniform(uint a, uint c, int index) => (Fmix32(unchecked(a * (uint)index + c)) >> 8) * InvTwo24;

    /// <summary>The step's affine map of the entry index: a (odd) and c, from SplitMix64's finaliser of key ⊕ t·2³².</summary>
    public static void StepWords(ulong key, int step, out uint a, out uint c)
    {
        unchecked
        {
            ulong z = key ^ ((ulong)(uint)step << 32);
            z = (z ^ (z >> 30)) * Mix1;
            z = (z ^ (z >> 27)) * Mix2;
            z ^= z >> 31;
            a = (uint)(z >> 32) | 1u;
            c = (uint)z;
        }
    }

    /// <summary>MurmurHash3's 32-bit finaliser (a bijection of uint).</summary>
    private static uint Fmix32(uint h)
    {
        unchecked
        {
            h ^= h >> 16;
            h *= 0x85EBCA6BU;
            h ^= h >> 13;
            h *= 0xC2B2AE35U;
            return h ^ (h >> 16);
        }
    }

    /// <summary>Bytes of codes of a tensor of <paramref name="length"/> entries (as <c>SettingsRules.QuantizedCodeBytes</c>).</summary>
    public static long CodeBytes(bool fourBit, long length, int block)
        => fourBit ? (length + block - 1) / block * (block / 2) : length;

    /// <summary>The byte of entry <paramref name="index"/> and whether its code is the high nibble (4 bits).</summary>
    private static int ByteOf(int index, int block, out bool high)
    {
        int half = block >> 1, b = index / block, j = index - b * block;
        high = j >= half;
        return b * half + (high ? j - half : j);
    }

    /// <summary>The code of entry <paramref name="index"/>.</summary>
    public static int Code(ReadOnlySpan<byte> codes, bool fourBit, int block, int index)
    {
        if (!fourBit) return (sbyte)codes[index];
        int at = ByteOf(index, block, out bool high);
        int nibble = high ? codes[at] >> 4 : codes[at] & 0xF;
        return (nibble ^ 8) - 8;
    }

    /// <summary>Writes the code of entry <paramref name="index"/> (q in [−Q, Q]).</summary>
    public static void SetCode(Span<byte> codes, bool fourBit, int block, int index, int q)
    {
        if (!fourBit) { codes[index] = (byte)(sbyte)q; return; }
        int at = ByteOf(index, block, out bool high);
        ref byte b = ref codes[at];
        b = high ? (byte)((b & 0x0F) | ((q & 0xF) << 4)) : (byte)((b & 0xF0) | (q & 0xF));
    }

    /// <summary>Whether every code of <paramref name="codes"/> is one a step writes (no −128 byte, no −8 nibble).</summary>
    public static bool CodesAreValid(ReadOnlySpan<byte> codes, bool fourBit)
    {
        foreach (byte b in codes)
            if (fourBit ? (b & 0xF) == 8 || (b >> 4) == 8 : b == 0x80) return false;
        return true;
    }

    /// <summary>Whether the unused codes of the last 4-bit block (entries length … blocks·block − 1) are 0, as a step leaves them (8 bits: no padding).</summary>
    public static bool PaddingIsZero(ReadOnlySpan<byte> codes, bool fourBit, int block, int length)
    {
        if (!fourBit) return true;
        long padded = (length + (long)block - 1) / block * block;
        for (long i = length; i < padded; i++)
            if (Code(codes, true, block, (int)i) != 0) return false;
        return true;
    }

    /// <summary>
    /// One block of m (entries from <paramref name="start"/>, a multiple of <paramref name="block"/>), dequantised into
    /// <paramref name="m"/> (its length is the block's): m = q·(scale / Q), vectorised for whole blocks.
    /// </summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, bool fourBit, int block, int start, float scale, int levels, Span<float> m)
        => Dequantize<Plain>(codes, fourBit, block, start, scale, levels, default, 0f, 0f, m);

    /// <summary>
    /// <see cref="Dequantize"/> fused with the first-moment EMA: m = β1·(q·(scale / Q)) + (1 − β1)·g, the same float operations in
    /// the same order as dequantising and then forming the EMA (so the same floats), in one pass over the block.
    /// </summary>
    public static void DequantizeEma(ReadOnlySpan<byte> codes, bool fourBit, int block, int start, float scale, int levels,
                                     ReadOnlySpan<float> g, float beta1, float oneMinusBeta1, Span<float> m)
        => Dequantize<Ema>(codes, fourBit, block, start, scale, levels, g, beta1, oneMinusBeta1, m);

    /// <summary>What a dequantised value x = q·step of entry j becomes: x itself, or the EMA β1·x + (1 − β1)·g[j].</summary>
    private interface IDequantized
    {
        static abstract float Scalar(float x, ReadOnlySpan<float> g, int j, float beta1, float oneMinusBeta1);
        static abstract Vector<float> Vector(Vector<float> x, ReadOnlySpan<float> g, Vector<float> beta1, Vector<float> oneMinusBeta1);
    }

    private readonly struct Plain : IDequantized
    {
        public static float Scalar(float x, ReadOnlySpan<float> g, int j, float beta1, float oneMinusBeta1) => x;
        public static Vector<float> Vector(Vector<float> x, ReadOnlySpan<float> g, Vector<float> beta1, Vector<float> oneMinusBeta1) => x;
    }

    private readonly struct Ema : IDequantized
    {
        public static float Scalar(float x, ReadOnlySpan<float> g, int j, float beta1, float oneMinusBeta1) => beta1 * x + oneMinusBeta1 * g[j];
        public static Vector<float> Vector(Vector<float> x, ReadOnlySpan<float> g, Vector<float> beta1, Vector<float> oneMinusBeta1)
            => beta1 * x + oneMinusBeta1 * new Vector<float>(g);
    }

    private static void Dequantize<T>(ReadOnlySpan<byte> codes, bool fourBit, int block, int start, float scale, int levels,
                                      ReadOnlySpan<float> g, float beta1, float oneMinusBeta1, Span<float> m) where T : struct, IDequantized
    {
        float step = scale / levels;
        int j = 0;
        if (!fourBit)
        {
            var q = MemoryMarshal.Cast<byte, sbyte>(codes.Slice(start, m.Length));
            if (Vector.IsHardwareAccelerated)
                for (; j <= m.Length - Vector<sbyte>.Count; j += Vector<sbyte>.Count)
                    Widen<T>(new Vector<sbyte>(q[j..]), step, g.IsEmpty ? g : g[j..], beta1, oneMinusBeta1, m[j..]);
            for (; j < m.Length; j++) m[j] = T.Scalar(q[j] * step, g, j, beta1, oneMinusBeta1);
            return;
        }
        int half = block >> 1;
        if (Vector.IsHardwareAccelerated && m.Length == block && half % Vector<sbyte>.Count == 0)
        {
            var bytes = MemoryMarshal.Cast<byte, sbyte>(codes.Slice(start >> 1, half));
            for (; j < half; j += Vector<sbyte>.Count)
            {
                var v = new Vector<sbyte>(bytes[j..]);
                // Low nibbles: entries j …; high nibbles: entries half + j ….
                Widen<T>(Vector.ShiftRightArithmetic(Vector.ShiftLeft(v, 4), 4), step, g.IsEmpty ? g : g[j..], beta1, oneMinusBeta1, m[j..]);
                Widen<T>(Vector.ShiftRightArithmetic(v, 4), step, g.IsEmpty ? g : g[(half + j)..], beta1, oneMinusBeta1, m[(half + j)..]);
            }
            return;
        }
        for (; j < m.Length; j++) m[j] = T.Scalar(Code(codes, true, block, start + j) * step, g, j, beta1, oneMinusBeta1);
    }

    /// <summary>Vector&lt;sbyte&gt;.Count codes, as floats times <paramref name="step"/> (then <typeparamref name="T"/>'s map), into <paramref name="m"/>.</summary>
    private static void Widen<T>(Vector<sbyte> v, float step, ReadOnlySpan<float> g, float beta1, float oneMinusBeta1, Span<float> m)
        where T : struct, IDequantized
    {
        var vstep = new Vector<float>(step);
        var vb1 = new Vector<float>(beta1);
        var vob1 = new Vector<float>(oneMinusBeta1);
        int n = Vector<int>.Count;
        Vector.Widen(v, out Vector<short> s0, out Vector<short> s1);
        Vector.Widen(s0, out Vector<int> i0, out Vector<int> i1);
        Vector.Widen(s1, out Vector<int> i2, out Vector<int> i3);
        T.Vector(Vector.ConvertToSingle(i0) * vstep, g, vb1, vob1).CopyTo(m);
        T.Vector(Vector.ConvertToSingle(i1) * vstep, g.IsEmpty ? g : g[n..], vb1, vob1).CopyTo(m[n..]);
        T.Vector(Vector.ConvertToSingle(i2) * vstep, g.IsEmpty ? g : g[(2 * n)..], vb1, vob1).CopyTo(m[(2 * n)..]);
        T.Vector(Vector.ConvertToSingle(i3) * vstep, g.IsEmpty ? g : g[(3 * n)..], vb1, vob1).CopyTo(m[(3 * n)..]);
    }

    /// <summary>
    /// Stores <paramref name="m"/> (one block, starting at entry <paramref name="start"/>, a multiple of <paramref name="block"/>):
    /// scale = max |m|, q = clamp(⌊m·(Q/scale) + r⌋, −Q, Q) with r = ½, or r = <see cref="Uniform(ulong, int, int)"/> when <paramref name="stochastic"/>.
    /// Returns the scale (0 when m is 0, or when max |m| &lt; Q / float.MaxValue: every code 0). Vectorised for whole blocks; the
    /// scalar path computes the same codes.
    /// </summary>
    public static float Quantize(ReadOnlySpan<float> m, Span<byte> codes, bool fourBit, int block, int start, int levels, bool stochastic, ulong key, int step)
        => Quantize(m, AbsMax(m), codes, fourBit, block, start, levels, stochastic, key, step);

    /// <summary>As <see cref="Quantize(ReadOnlySpan{float}, Span{byte}, bool, int, int, int, bool, ulong, int)"/> with max |m| already known (the caller's pass formed it).</summary>
    public static float Quantize(ReadOnlySpan<float> m, float absmax, Span<byte> codes, bool fourBit, int block, int start, int levels, bool stochastic, ulong key, int step)
    {
        float inv = InverseStep(ref absmax, levels);
        int j = 0, half = block >> 1, f = Vector<float>.Count;
        uint a = 0, c = 0;
        if (stochastic) StepWords(key, step, out a, out c);   // once per block, not per entry
        if (m.Length == block && WideCpu.FitsBlock(fourBit, block))
        {
            WideCpu.Quantize(m, inv, levels, fourBit, stochastic, a, c, start, codes.Slice(fourBit ? start >> 1 : start, fourBit ? half : block));
            return absmax;
        }
        if (Vector.IsHardwareAccelerated && m.Length == block && (fourBit ? half : block) % Vector<sbyte>.Count == 0)
        {
            // Codes of Vector<sbyte>.Count entries at a time: four float vectors, narrowed int → short → sbyte.
            int lanes = Vector<sbyte>.Count;
            var target = MemoryMarshal.Cast<byte, sbyte>(codes);
            for (; j < (fourBit ? half : block); j += lanes)
            {
                var lo = Codes(m, j, inv, levels, stochastic, a, c, start, f);
                if (!fourBit) { lo.CopyTo(target[(start + j)..]); continue; }
                var hi = Codes(m, half + j, inv, levels, stochastic, a, c, start, f);
                ((lo & new Vector<sbyte>(0x0F)) | Vector.ShiftLeft(hi, 4)).CopyTo(target[((start >> 1) + j)..]);
            }
            return absmax;
        }
        for (; j < m.Length; j++)
        {
            float r = stochastic ? Uniform(a, c, start + j) : 0.5f;
            int q = (int)MathF.Floor(m[j] * inv + r);
            SetCode(codes, fourBit, block, start + j, Math.Clamp(q, -levels, levels));
        }
        return absmax;
    }

    /// <summary>
    /// Q / max |m| of a block, the factor its codes are formed with; 0 when max |m| is 0 (y = r, ⌊r⌋ = 0: every code 0) and when
    /// max |m| &lt; Q / float.MaxValue (3.7e-37 at 8 bits, 2.1e-38 at 4), where Q / max would overflow and saturate every code: such
    /// a block is stored as m = 0 (<paramref name="absmax"/> set to 0 too), far below anything an update can feel.
    /// </summary>
    internal static float InverseStep(ref float absmax, int levels)
    {
        float inv = absmax == 0f ? 0f : levels / absmax;
        if (!(inv <= float.MaxValue))
        {
            inv = 0f;
            absmax = 0f;
        }
        return inv;
    }

    /// <summary>The codes of entries <paramref name="j"/> … j + Vector&lt;sbyte&gt;.Count − 1 of the block.</summary>
    private static Vector<sbyte> Codes(ReadOnlySpan<float> m, int j, float inv, int levels, bool stochastic, uint a, uint c, int start, int f)
        => Vector.Narrow(Vector.Narrow(Part(m, j, inv, levels, stochastic, a, c, start), Part(m, j + f, inv, levels, stochastic, a, c, start)),
                         Vector.Narrow(Part(m, j + 2 * f, inv, levels, stochastic, a, c, start), Part(m, j + 3 * f, inv, levels, stochastic, a, c, start)));

    /// <summary>clamp(⌊m·inv + r⌋, −Q, Q) of Vector&lt;float&gt;.Count entries from <paramref name="at"/>.</summary>
    private static Vector<int> Part(ReadOnlySpan<float> m, int at, float inv, int levels, bool stochastic, uint a, uint c, int start)
    {
        var r = stochastic ? UniformVector(a, c, start + at) : new Vector<float>(0.5f);
        var y = Vector.Floor(new Vector<float>(m[at..]) * new Vector<float>(inv) + r);
        return Vector.Min(Vector.Max(Vector.ConvertToInt32(y), new Vector<int>(-levels)), new Vector<int>(levels));
    }

    /// <summary><see cref="Uniform(uint, uint, int)"/> for Vector&lt;float&gt;.Count consecutive entries from <paramref name="index"/> (the step's words a, c).</summary>
    private static Vector<float> UniformVector(uint a, uint c, int index)
    {
        var h = (new Vector<uint>((uint)index) + Iota) * new Vector<uint>(a) + new Vector<uint>(c);
        h ^= Vector.ShiftRightLogical(h, 16);
        h *= new Vector<uint>(0x85EBCA6BU);
        h ^= Vector.ShiftRightLogical(h, 13);
        h *= new Vector<uint>(0xC2B2AE35U);
        h ^= Vector.ShiftRightLogical(h, 16);
        // The top 24 bits: below 2²⁴, exact as int and as float.
        return Vector.ConvertToSingle(Vector.AsVectorInt32(Vector.ShiftRightLogical(h, 8))) * new Vector<float>(InvTwo24);
    }

    private static readonly Vector<uint> Iota = MakeIota();

    private static Vector<uint> MakeIota()
    {
        Span<uint> lanes = stackalloc uint[Vector<uint>.Count];
        for (int l = 0; l < lanes.Length; l++) lanes[l] = (uint)l;
        return new Vector<uint>(lanes);
    }

    private static float AbsMax(ReadOnlySpan<float> m)
    {
        int j = 0;
        float absmax = 0f;
        if (Vector.IsHardwareAccelerated && m.Length >= Vector<float>.Count)
        {
            var acc = Vector<float>.Zero;
            for (; j <= m.Length - Vector<float>.Count; j += Vector<float>.Count) acc = Vector.Max(acc, Vector.Abs(new Vector<float>(m[j..])));
            for (int l = 0; l < Vector<float>.Count; l++) absmax = MathF.Max(absmax, acc[l]);
        }
        for (; j < m.Length; j++) absmax = MathF.Max(absmax, MathF.Abs(m[j]));
        return absmax;
    }
}
