using Collins.Hashing;

namespace Collins.Kernels;

/// <summary>
/// The storage of a block-quantised first moment (<see cref="FirstMomentStorage.Quantized8"/>, <see cref="FirstMomentStorage.Quantized4"/>):
/// signed integer codes q in [−Q, Q] and one fp32 scale per block, m = q·(scale / Q); and the counter-based random bits of
/// stochastic rounding. The kernels and the reference both read and write codes through this class (the storage format is
/// defined once, like the hash constants); each writes its own arithmetic.
/// </summary>
/// <remarks>
/// <para>Codes: 8 bits store q as a signed byte at entry i; 4 bits store q as a two's-complement nibble, entry i in byte
/// i / 2, the low nibble for even i. An all-zero array is m = 0; the byte −128 and the nibble −8 never occur.</para>
/// <para>Random bits: u(key, t, i) = SplitMix64's finaliser of key ⊕ (t·2³² + i), its top 24 bits / 2²⁴, in [0, 1), where key
/// is <see cref="HashDerivation.TensorKey"/> of (seed, tensor name) with a constant of its own. One value per (tensor, step,
/// entry), whatever thread computes it.</para>
/// </remarks>
internal static class BlockQuantizer
{
    private const ulong StreamSalt = 0x5155414E54495A45UL;   // "QUANTIZE": keeps these bits apart from the hash constants

    /// <summary>The key of a tensor's stochastic-rounding stream.</summary>
    public static ulong StreamKey(long seed, string tensorName) => HashDerivation.TensorKey(seed, tensorName) ^ StreamSalt;

    /// <summary>u(key, step, index) in [0, 1): the random offset of stochastic rounding for one entry of one step.</summary>
    public static float Uniform(ulong key, int step, int index)
    {
        unchecked
        {
            ulong z = key ^ (((ulong)(uint)step << 32) | (uint)index);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            z ^= z >> 31;
            return (z >> 40) * (1f / (1 << 24));
        }
    }

    /// <summary>The code of entry <paramref name="index"/>.</summary>
    public static int Code(ReadOnlySpan<byte> codes, bool fourBit, int index)
    {
        if (!fourBit) return (sbyte)codes[index];
        int nibble = (index & 1) == 0 ? codes[index >> 1] & 0xF : codes[index >> 1] >> 4;
        return (nibble ^ 8) - 8;
    }

    /// <summary>Writes the code of entry <paramref name="index"/> (q in [−Q, Q]).</summary>
    public static void SetCode(Span<byte> codes, bool fourBit, int index, int q)
    {
        if (!fourBit) { codes[index] = (byte)(sbyte)q; return; }
        ref byte b = ref codes[index >> 1];
        b = (index & 1) == 0 ? (byte)((b & 0xF0) | (q & 0xF)) : (byte)((b & 0x0F) | ((q & 0xF) << 4));
    }

    /// <summary>Whether every code of <paramref name="codes"/> is one a step writes (no −128 byte, no −8 nibble).</summary>
    public static bool CodesAreValid(ReadOnlySpan<byte> codes, bool fourBit)
    {
        foreach (byte b in codes)
            if (fourBit ? (b & 0xF) == 8 || (b >> 4) == 8 : b == 0x80) return false;
        return true;
    }

    /// <summary>One block of m (entries from <paramref name="start"/>), dequantised into <paramref name="m"/> (its length is the block's): m = q·(scale / Q).</summary>
    public static void Dequantize(ReadOnlySpan<byte> codes, bool fourBit, int start, float scale, int levels, Span<float> m)
    {
        float step = scale / levels;
        if (!fourBit)
        {
            var q = codes.Slice(start, m.Length);
            for (int j = 0; j < m.Length; j++) m[j] = (sbyte)q[j] * step;
            return;
        }
        for (int j = 0; j < m.Length; j++) m[j] = Code(codes, true, start + j) * step;
    }

    /// <summary>
    /// Stores <paramref name="m"/> (one block, starting at entry <paramref name="start"/>): scale = max |m|, q = clamp(⌊m·Q/scale + r⌋, −Q, Q)
    /// with r = ½, or r = <see cref="Uniform"/> when <paramref name="stochastic"/>. Returns the scale (0 when m is 0, every code 0).
    /// </summary>
    public static float Quantize(ReadOnlySpan<float> m, Span<byte> codes, bool fourBit, int start, int levels, bool stochastic, ulong key, int step)
    {
        float absmax = 0f;
        foreach (float x in m) absmax = MathF.Max(absmax, MathF.Abs(x));
        if (absmax == 0f)
        {
            for (int j = 0; j < m.Length; j++) SetCode(codes, fourBit, start + j, 0);
            return 0f;
        }
        float inv = levels / absmax;
        for (int j = 0; j < m.Length; j++)
        {
            float r = stochastic ? Uniform(key, step, start + j) : 0.5f;
            int q = (int)MathF.Floor(m[j] * inv + r);
            SetCode(codes, fourBit, start + j, Math.Clamp(q, -levels, levels));
        }
        return absmax;
    }
}
