using Collins;

namespace TinyLm;

// The memory-light anchors of the field, as BASELINES for the frontier sweep (issue #14): 8-bit Adam (Dettmers et al. 2021),
// 4-bit AdamW (Li et al. 2023), Adafactor (Shazeer & Stern 2018) and Adam-mini (Zhang et al. 2024), each written from its
// paper. They are not product features: they live in the sample, implement ITrainerOptimizer, and are registered in
// OptimizerCatalog. Every Adam-type anchor uses the same update as the DenseAdamW baseline,
// p ← p·(1 − lr·wd) − lr·(m·1/(1−β1^t)) / (√v·1/√(1−β2^t) + ε), so that the state estimator is the only difference.

/// <summary>
/// A quantisation map: the values its codes stand for, strictly ascending (code k is the k-th value), and round-to-nearest
/// encoding (a value halfway between two codes goes to the lower one). Codes are indices into the sorted table, as in
/// bitsandbytes' lookup-table quantisation.
/// </summary>
public sealed class QuantizationMap
{
    private readonly float[] _values;
    private readonly float[] _thresholds;   // _thresholds[k] = midpoint of codes k and k + 1

    /// <param name="name">What the map is, for messages.</param>
    /// <param name="bits">The code width; at most 2^bits values.</param>
    /// <param name="values">The code values, strictly ascending.</param>
    public QuantizationMap(string name, int bits, IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (bits is not (4 or 8)) throw new ArgumentOutOfRangeException(nameof(bits), bits, "Codes are 4 or 8 bits wide.");
        if (values.Count < 2 || values.Count > 1 << bits)
            throw new ArgumentException($"A {bits}-bit map has 2 to {1 << bits} values, not {values.Count}.", nameof(values));
        Name = name;
        Bits = bits;
        _values = values.Select(v => (float)v).ToArray();
        _thresholds = new float[_values.Length - 1];
        for (int k = 0; k < _thresholds.Length; k++)
        {
            if (!(_values[k] < _values[k + 1])) throw new ArgumentException($"{name}: values must be strictly ascending (at code {k}).", nameof(values));
            _thresholds[k] = (float)(0.5 * ((double)_values[k] + _values[k + 1]));
        }
    }

    public string Name { get; }
    /// <summary>Bits per code (4 or 8).</summary>
    public int Bits { get; }
    /// <summary>Number of codes in use (≤ 2^<see cref="Bits"/>).</summary>
    public int Count => _values.Length;
    /// <summary>The code values, ascending.</summary>
    public IReadOnlyList<float> Values => _values;

    /// <summary>The value code <paramref name="code"/> stands for.</summary>
    public float Decode(int code) => _values[code];

    /// <summary>The code of the value nearest <paramref name="x"/> (values outside the map go to its ends).</summary>
    public int Encode(float x)
    {
        // The number of thresholds below x is the nearest code.
        int lo = 0, hi = _thresholds.Length;
        while (lo < hi)
        {
            int mid = (lo + hi) >> 1;
            if (_thresholds[mid] < x) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /// <summary>
    /// The dynamic (tree) map of Dettmers (2016; 2021, §2 and Figure 2), signed: after the sign bit, the run of zero bits is
    /// the decimal exponent E (the value is scaled by 10^−E), the first one bit is the indicator, and the F bits after it are a
    /// linear fraction over [0.1, 1] (the midpoints of 2^F equal bins). With b bits, E = 0 … b − 2 and F = b − 2 − E, so the
    /// magnitudes are 10^−E·(0.1 + 0.9·(j + ½)/2^F), j = 0 … 2^F − 1: 2^(b−1) − 1 of them, ±. The all-zero pattern is 0;
    /// the pattern "sign set, all else zero" (−0) is given the value +1 exactly, as bitsandbytes does, so that the block's
    /// absmax element, when positive, is stored exactly. 2^b codes in all (8 bits: 256, magnitudes 5.5e−7 … 1).
    /// </summary>
    public static QuantizationMap DynamicSigned(int bits)
    {
        var magnitudes = DynamicMagnitudes(maxExponent: bits - 2, fractionBitsAtExponentZero: bits - 2);
        var values = magnitudes.AsEnumerable().Reverse().Select(x => -x).Append(0.0).Concat(magnitudes).Append(1.0).ToArray();
        return new QuantizationMap($"dynamic signed {bits}-bit", bits, values);
    }

    /// <summary>
    /// The dynamic map for a non-negative state (8-bit Adam's second moment; Dettmers et al. 2021, "dynamic quantization"):
    /// the sign bit is not needed and serves as one more linear-fraction bit at every exponent, so E = 0 … b − 2 as in the
    /// signed map and F = b − 1 − E: 2^b − 2 magnitudes 10^−E·(0.1 + 0.9·(j + ½)/2^F), plus 0 and (the spare pattern, as in
    /// <see cref="DynamicSigned"/>) +1 exactly. 2^b codes (8 bits: 256, smallest positive 3.25e−7).
    /// </summary>
    public static QuantizationMap DynamicUnsigned(int bits)
    {
        var magnitudes = DynamicMagnitudes(maxExponent: bits - 2, fractionBitsAtExponentZero: bits - 1);
        var values = magnitudes.Prepend(0.0).Append(1.0).ToArray();
        return new QuantizationMap($"dynamic unsigned {bits}-bit", bits, values);
    }

    /// <summary>
    /// The linear map without zero point of Li et al. (2023, §4.1), for the second moment: T(i) = (i + 1)/2^b, i = 0 … 2^b − 1
    /// (4 bits: 1/16 … 1). The smallest code is 1/2^b of the scale, never 0, so a small v is never dequantised to zero (the
    /// "zero-point problem" that sends 1/√v̂ to 1/ε).
    /// </summary>
    public static QuantizationMap LinearWithoutZero(int bits) =>
        new($"linear {bits}-bit without zero", bits, Enumerable.Range(1, 1 << bits).Select(i => (double)i / (1 << bits)).ToArray());

    /// <summary>The positive magnitudes of a dynamic map, ascending: exponents maxExponent … 0, 2^(F0 − E) fractions each.</summary>
    private static double[] DynamicMagnitudes(int maxExponent, int fractionBitsAtExponentZero)
    {
        var m = new List<double>();
        for (int e = maxExponent; e >= 0; e--)
        {
            int levels = 1 << (fractionBitsAtExponentZero - e);
            double scale = Math.Pow(10, -e);
            for (int j = 0; j < levels; j++) m.Add(scale * (0.1 + 0.9 * (j + 0.5) / levels));
        }
        return m.ToArray();
    }
}

/// <summary>
/// One moment tensor as an anchor keeps it between steps. <see cref="Load"/> hands out an fp32 working copy (for fp32 state
/// the state itself); the step updates it in place and <see cref="Save"/> stores it back (re-quantises it). A quantised
/// storage's working copy is scratch, refilled every step (what a fused kernel holds in registers), and not counted in
/// <see cref="Bytes"/>.
/// </summary>
internal abstract class MomentStorage
{
    /// <summary>Bytes kept between steps: codes at their bit width, packed, plus fp32 scales; or 4 per element for fp32.</summary>
    public abstract long Bytes { get; }
    /// <summary>The stored moment, dequantised, in an fp32 array of the tensor's length.</summary>
    public abstract float[] Load();
    /// <summary>Stores the working copy that <see cref="Load"/> returned.</summary>
    public abstract void Save();
}

/// <summary>32-bit state: 4 bytes per element.</summary>
internal sealed class Fp32Storage(int length) : MomentStorage
{
    private readonly float[] _values = new float[length];
    public override long Bytes => 4L * _values.Length;
    public override float[] Load() => _values;
    public override void Save() { }
}

/// <summary>Codes of 4 or 8 bits; 4-bit codes packed two per byte (element 2k in the low nibble of byte k).</summary>
internal sealed class PackedCodes(int length, int bits)
{
    private readonly byte[] _bytes = new byte[bits == 8 ? length : (length + 1) / 2];
    public long Bytes => _bytes.Length;

    public int this[int i]
    {
        get => bits == 8 ? _bytes[i] : (_bytes[i >> 1] >> ((i & 1) * 4)) & 0xF;
        set
        {
            if (bits == 8) { _bytes[i] = (byte)value; return; }
            int shift = (i & 1) * 4;
            _bytes[i >> 1] = (byte)((_bytes[i >> 1] & ~(0xF << shift)) | ((value & 0xF) << shift));
        }
    }
}

/// <summary>
/// Block-wise absmax quantisation (Dettmers et al. 2021, §2.1): the flattened tensor in blocks of B elements, each with one
/// fp32 scale N_b = max |x| over the block; x is stored as the code nearest x/N_b and restored as map[code]·N_b.
/// Bytes: ⌈n·bits/8⌉ + 4·⌈n/B⌉. A block of zeros has N_b = 0 and restores as zeros.
/// </summary>
internal sealed class BlockQuantizedStorage : MomentStorage
{
    private readonly QuantizationMap _map;
    private readonly PackedCodes _codes;
    private readonly float[] _scales, _work;
    private readonly int _blockSize;

    public BlockQuantizedStorage(int length, int blockSize, QuantizationMap map)
    {
        _map = map;
        _blockSize = blockSize;
        _codes = new PackedCodes(length, map.Bits);
        _scales = new float[(length + blockSize - 1) / blockSize];
        _work = new float[length];
    }

    public override long Bytes => _codes.Bytes + 4L * _scales.Length;
    /// <summary>The per-block scales (absmax of each block at the last <see cref="Save"/>).</summary>
    public IReadOnlyList<float> Scales => _scales;

    public override float[] Load()
    {
        for (int b = 0; b < _scales.Length; b++)
        {
            int start = b * _blockSize, end = Math.Min(_work.Length, start + _blockSize);
            float scale = _scales[b];
            for (int i = start; i < end; i++) _work[i] = _map.Decode(_codes[i]) * scale;
        }
        return _work;
    }

    public override void Save()
    {
        for (int b = 0; b < _scales.Length; b++)
        {
            int start = b * _blockSize, end = Math.Min(_work.Length, start + _blockSize);
            float absmax = 0;
            for (int i = start; i < end; i++) absmax = Math.Max(absmax, Math.Abs(_work[i]));
            _scales[b] = absmax;
            // x / absmax (a division, not a multiplication by 1/absmax) is exactly ±1 for the absmax element.
            for (int i = start; i < end; i++) _codes[i] = _map.Encode(absmax > 0 ? _work[i] / absmax : 0f);
        }
    }
}

/// <summary>
/// Rank-1 normalisation of a non-negative 2-D state (Li et al. 2023, §4.2): row maxima r_i = max_j x_ij and column maxima
/// c_j = max_i x_ij, both fp32; x_ij is stored as the code nearest x_ij / min(r_i, c_j) (which lies in [0, 1]) and restored
/// as map[code]·min(r_i, c_j). Bytes: ⌈rows·cols·bits/8⌉ + 4·(rows + cols).
/// </summary>
internal sealed class Rank1QuantizedStorage : MomentStorage
{
    private readonly QuantizationMap _map;
    private readonly PackedCodes _codes;
    private readonly float[] _rowMax, _colMax, _work;
    private readonly int _rows, _cols;

    public Rank1QuantizedStorage(int rows, int cols, QuantizationMap map)
    {
        _map = map;
        _rows = rows; _cols = cols;
        _codes = new PackedCodes(rows * cols, map.Bits);
        _rowMax = new float[rows];
        _colMax = new float[cols];
        _work = new float[rows * cols];
    }

    public override long Bytes => _codes.Bytes + 4L * (_rows + _cols);

    public override float[] Load()
    {
        for (int i = 0; i < _rows; i++)
            for (int j = 0; j < _cols; j++)
                _work[i * _cols + j] = _map.Decode(_codes[i * _cols + j]) * Math.Min(_rowMax[i], _colMax[j]);
        return _work;
    }

    public override void Save()
    {
        Array.Clear(_rowMax);
        Array.Clear(_colMax);
        for (int i = 0; i < _rows; i++)
            for (int j = 0; j < _cols; j++)
            {
                float a = Math.Abs(_work[i * _cols + j]);
                _rowMax[i] = Math.Max(_rowMax[i], a);
                _colMax[j] = Math.Max(_colMax[j], a);
            }
        for (int i = 0; i < _rows; i++)
            for (int j = 0; j < _cols; j++)
            {
                float scale = Math.Min(_rowMax[i], _colMax[j]);
                _codes[i * _cols + j] = _map.Encode(scale > 0 ? _work[i * _cols + j] / scale : 0f);
            }
    }
}

/// <summary>
/// Adam whose moments are kept in a <see cref="MomentStorage"/> per tensor. A step dequantises m and v, updates them and the
/// parameters in fp32 with the new (not yet re-quantised) moments, and re-quantises them, as bitsandbytes' and Li et al.'s
/// kernels do. Tensors are stepped in parallel, each by one thread, so results do not depend on the thread count.
/// </summary>
public abstract class QuantizedAdam : ITrainerOptimizer
{
    private readonly MomentStorage[] _m, _v;
    private readonly double _beta1, _beta2, _weightDecay;
    private readonly float _epsilon;
    private int _t;

    private protected QuantizedAdam(string name, IReadOnlyList<TensorSpec> tensors, Func<TensorSpec, MomentStorage> firstMoment,
                                    Func<TensorSpec, MomentStorage> secondMoment, double beta1, double beta2, double epsilon, double weightDecay)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Name = name;
        _beta1 = beta1; _beta2 = beta2; _epsilon = (float)epsilon; _weightDecay = weightDecay;
        _m = tensors.Select(firstMoment).ToArray();
        _v = tensors.Select(secondMoment).ToArray();
    }

    public string Name { get; }
    public abstract string Implementation { get; }
    public long StateBytes => _m.Sum(s => s.Bytes) + _v.Sum(s => s.Bytes);

    /// <summary>The first-moment storage of each tensor, in spec order (for tests).</summary>
    internal IReadOnlyList<MomentStorage> FirstMoments => _m;
    /// <summary>The second-moment storage of each tensor, in spec order (for tests).</summary>
    internal IReadOnlyList<MomentStorage> SecondMoments => _v;

    public void Step(float learningRate, float[][] parameters, float[][] gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        var s = StepScalars.For(++_t, learningRate, _beta1, _beta2, _weightDecay);
        float b1 = (float)_beta1, c1 = (float)(1 - _beta1), b2 = (float)_beta2, c2 = (float)(1 - _beta2), eps = _epsilon;
        Kernels.For(parameters.Length, i =>
        {
            float[] p = parameters[i], g = gradients[i], m = _m[i].Load(), v = _v[i].Load();
            for (int j = 0; j < p.Length; j++)
            {
                float gj = g[j];
                float mj = b1 * m[j] + c1 * gj;
                float vj = b2 * v[j] + c2 * gj * gj;
                m[j] = mj; v[j] = vj;
                p[j] = p[j] * s.Decay - s.LearningRate * (mj * s.InvBiasCorrection1) / (MathF.Sqrt(vj) * s.InvSqrtBiasCorrection2 + eps);
            }
            _m[i].Save();
            _v[i].Save();
        });
    }
}

/// <summary>
/// 8-bit Adam as bitsandbytes does it (Dettmers, Lewis, Shleifer, Zettlemoyer 2021, "8-bit Optimizers via Block-wise
/// Quantization"): m and v both stored as 8-bit codes, block-wise (B = 2048) with one fp32 absmax per block, m with the
/// signed dynamic map and v with the unsigned one (<see cref="QuantizationMap.DynamicSigned"/>,
/// <see cref="QuantizationMap.DynamicUnsigned"/>); dequantise, Adam update in fp32, re-quantise to the nearest code. Tensors
/// of fewer than 4096 elements keep 32-bit m and v (bitsandbytes' min_8bit_size). Defaults β = (0.9, 0.999), ε = 1e-8,
/// no weight decay (the DenseAdamW baseline's). The paper's stable embedding layer changes the model, not the optimizer, and
/// is not used (TinyLm's embedding is the same for every optimizer).
/// </summary>
/// <remarks>
/// State bytes: Σ over tensors with n ≥ 4096 of 2·(n + 4·⌈n/2048⌉), plus 8·n for every smaller tensor.
/// For TinyLm (112,065 parameters): 221,888 + 10,760 = 232,648 B, 2.08 B/param.
/// </remarks>
public sealed class Adam8bit : QuantizedAdam
{
    public const int DefaultBlockSize = 2048, DefaultMinQuantizedElements = 4096;

    /// <summary>The signed 8-bit dynamic map for m.</summary>
    public static QuantizationMap FirstMomentMap { get; } = QuantizationMap.DynamicSigned(8);
    /// <summary>The unsigned 8-bit dynamic map for v.</summary>
    public static QuantizationMap SecondMomentMap { get; } = QuantizationMap.DynamicUnsigned(8);

    /// <param name="blockSize">Elements per absmax block (2048 in bitsandbytes).</param>
    /// <param name="minQuantizedElements">Tensors with fewer elements keep 32-bit state (4096 in bitsandbytes).</param>
    public Adam8bit(IReadOnlyList<TensorSpec> tensors, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0,
                    string name = "Adam8bit", int blockSize = DefaultBlockSize, int minQuantizedElements = DefaultMinQuantizedElements)
        : base(name, tensors,
               t => Storage(t, blockSize, minQuantizedElements, FirstMomentMap),
               t => Storage(t, blockSize, minQuantizedElements, SecondMomentMap),
               beta1, beta2, epsilon, weightDecay)
    {
    }

    public override string Implementation => "anchor: 8-bit Adam, block-wise dynamic quantisation (TinyLm Anchors.cs)";

    private static MomentStorage Storage(TensorSpec t, int blockSize, int minQuantized, QuantizationMap map)
    {
        int n = ModelConfig.Length(t);
        return n >= minQuantized ? new BlockQuantizedStorage(n, blockSize, map) : new Fp32Storage(n);
    }
}

/// <summary>
/// 4-bit AdamW of Li, Chen, Zhu (2023), "Memory Efficient Optimizers with 4-bit States", in its recommended form:
/// m block-wise with B = 128, absmax-normalised, on the signed 4-bit dynamic-exponent map (B128/DE;
/// <see cref="QuantizationMap.DynamicSigned"/> with 4 bits: 0, ±0.0055 … ±0.8875, +1); v with rank-1 normalisation for 2-D
/// tensors (scale min(row max, column max)) on the linear map without zero point (Rank-1/Linear;
/// <see cref="QuantizationMap.LinearWithoutZero"/>: 1/16 … 1), and for tensors of other ranks block-wise (B = 128) on the same
/// linear map. Round to nearest (the paper also studies stochastic rounding; not used here). Tensors of at most 4096
/// elements keep 32-bit m and v, as the paper's implementation does. Defaults β = (0.9, 0.999), ε = 1e-8 and, to compare
/// with the DenseAdamW baseline, no weight decay.
/// </summary>
/// <remarks>
/// State bytes, over tensors with n &gt; 4096: m ⌈n/2⌉ + 4·⌈n/128⌉; v ⌈n/2⌉ + 4·(rows + cols) for 2-D, else ⌈n/2⌉ + 4·⌈n/128⌉;
/// plus 8·n for every tensor of at most 4096 elements. For TinyLm: 109,712 + 109,064 = 218,776 B, 1.95 B/param (Pos and the
/// Wo matrices have exactly 4096 elements and so stay 32-bit, which is most of the total).
/// </remarks>
public sealed class AdamW4bit : QuantizedAdam
{
    public const int DefaultBlockSize = 128, DefaultMaxFullPrecisionElements = 4096;

    /// <summary>The signed 4-bit dynamic-exponent map for m.</summary>
    public static QuantizationMap FirstMomentMap { get; } = QuantizationMap.DynamicSigned(4);
    /// <summary>The 4-bit linear map without zero for v.</summary>
    public static QuantizationMap SecondMomentMap { get; } = QuantizationMap.LinearWithoutZero(4);

    /// <param name="blockSize">Elements per absmax block of m (and of a non-2-D v).</param>
    /// <param name="maxFullPrecisionElements">Tensors of at most this many elements keep 32-bit state.</param>
    public AdamW4bit(IReadOnlyList<TensorSpec> tensors, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0,
                     string name = "AdamW4bit", int blockSize = DefaultBlockSize, int maxFullPrecisionElements = DefaultMaxFullPrecisionElements)
        : base(name, tensors,
               t => ModelConfig.Length(t) > maxFullPrecisionElements
                   ? new BlockQuantizedStorage(ModelConfig.Length(t), blockSize, FirstMomentMap) : new Fp32Storage(ModelConfig.Length(t)),
               t => ModelConfig.Length(t) <= maxFullPrecisionElements ? new Fp32Storage(ModelConfig.Length(t))
                   : t.Shape.Length == 2 ? new Rank1QuantizedStorage(t.Shape[0], t.Shape[1], SecondMomentMap)
                   : new BlockQuantizedStorage(ModelConfig.Length(t), blockSize, SecondMomentMap),
               beta1, beta2, epsilon, weightDecay)
    {
    }

    public override string Implementation => "anchor: 4-bit AdamW, B128/DE m, rank-1/linear v (TinyLm Anchors.cs)";
}

/// <summary>
/// Adafactor (Shazeer &amp; Stern 2018, Algorithms 4 and 5) with its published defaults: β1 = 0 (no first moment);
/// β̂2_t = 1 − t^−0.8; for a 2-D tensor the second moment factored into row and column EMAs of G² + ε1 (ε1 = 1e-30),
/// R_t = β̂2_t·R_{t−1} + (1 − β̂2_t)·(G² + ε1)·1, C_t = β̂2_t·C_{t−1} + (1 − β̂2_t)·1ᵀ·(G² + ε1), V̂ = R·Cᵀ / (1ᵀR); for a
/// 1-D tensor the unfactored V_t = β̂2_t·V_{t−1} + (1 − β̂2_t)·(G² + ε1); U = G/√V̂; update clipping
/// Û = U / max(1, RMS(U)/d) with d = 1 over each tensor; X ← X − α·Û.
/// Deviations, so that it can be swept like the others: α is the external learning rate (the trainer's warm-up and cosine
/// schedule), not the paper's relative step size min(10^−2, 1/√t); and the parameter-scale factor max(ε2, RMS(X)) is off
/// (α is not multiplied by it). No weight decay.
/// </summary>
/// <remarks>
/// State bytes: 4·(rows + cols) per 2-D tensor, 4·n per other tensor (the step count is not counted, as for every
/// optimizer here). For TinyLm: 4·(2,434 + 1,345) = 15,116 B, 0.135 B/param; the unfactored gains and biases are 1,345 of
/// the 3,779 floats.
/// </remarks>
public sealed class Adafactor : ITrainerOptimizer
{
    private readonly float[]?[] _rows, _cols, _full;
    private readonly int[][] _shapes;
    private readonly double _decayRate, _epsilon1, _clipThreshold;
    private int _t;
    private readonly AdafactorVectors _vectors;

    /// <param name="decayRate">c in β̂2_t = 1 − t^−c (0.8).</param>
    /// <param name="epsilon1">ε1, added to G² (1e-30).</param>
    /// <param name="clipThreshold">d of the update clipping (1).</param>
    /// <param name="name">The name in the results.</param>
    /// <param name="vectors">How the unfactored (1-D) tensors step: Adafactor's way, or one of the ablations of <see cref="AdafactorVectors"/>.</param>
    public Adafactor(IReadOnlyList<TensorSpec> tensors, double decayRate = 0.8, double epsilon1 = 1e-30, double clipThreshold = 1.0, string name = "Adafactor",
                     AdafactorVectors vectors = AdafactorVectors.Adafactor)
    {
        _vectors = vectors;
        ArgumentNullException.ThrowIfNull(tensors);
        Name = name;
        _decayRate = decayRate; _epsilon1 = epsilon1; _clipThreshold = clipThreshold;
        _shapes = tensors.Select(t => t.Shape.ToArray()).ToArray();
        _rows = _shapes.Select(s => s.Length == 2 ? new float[s[0]] : null).ToArray();
        _cols = _shapes.Select(s => s.Length == 2 ? new float[s[1]] : null).ToArray();
        _full = _shapes.Select(s => s.Length == 2 ? null : new float[s.Aggregate(1, (a, b) => a * b)]).ToArray();
    }

    public string Name { get; }
    public string Implementation => "anchor: Adafactor, factored v, beta1 0, update clipping d = 1 (TinyLm Anchors.cs)"
                                    + (_vectors == AdafactorVectors.Adafactor ? "" : $"; ablation: vectors {_vectors}");
    public long StateBytes => 4L * (_rows.Sum(r => r?.Length ?? 0) + _cols.Sum(c => c?.Length ?? 0) + _full.Sum(v => v?.Length ?? 0));

    /// <summary>β̂2_t = 1 − t^−c for step t (1-based).</summary>
    public double Beta2At(int step) => 1 - Math.Pow(step, -_decayRate);

    /// <summary>The second-moment estimate V̂ of tensor <paramref name="index"/> now: R_i·C_j / ΣR for 2-D, V for others (for tests).</summary>
    internal double[] SecondMomentEstimate(int index)
    {
        if (_full[index] is { } v) return v.Select(x => (double)x).ToArray();
        float[] r = _rows[index]!, c = _cols[index]!;
        double sum = r.Sum(x => (double)x);
        var est = new double[r.Length * c.Length];
        for (int i = 0; i < r.Length; i++)
            for (int j = 0; j < c.Length; j++) est[i * c.Length + j] = (double)r[i] * c[j] / sum;
        return est;
    }

    public void Step(float learningRate, float[][] parameters, float[][] gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        double beta2 = Beta2At(++_t);
        Kernels.For(parameters.Length, i =>
        {
            if (_full[i] is { } v) StepUnfactored(parameters[i], gradients[i], v, beta2, learningRate);
            else StepFactored(parameters[i], gradients[i], _rows[i]!, _cols[i]!, beta2, learningRate);
        });
    }

    private void StepUnfactored(float[] p, float[] g, float[] v, double beta2, float lr)
    {
        if (_vectors == AdafactorVectors.NoClipping)
        {
            for (int j = 0; j < p.Length; j++)
            {
                double gj = g[j];
                v[j] = (float)(beta2 * v[j] + (1 - beta2) * (gj * gj + _epsilon1));
                p[j] = (float)(p[j] - lr * (gj / Math.Sqrt(v[j])));
            }
            return;
        }
        if (_vectors == AdafactorVectors.Adam)
        {
            const double beta2Adam = 0.999, epsAdam = 1e-8;
            double bc2 = 1 - Math.Pow(beta2Adam, _t);
            for (int j = 0; j < p.Length; j++)
            {
                double gj = g[j];
                v[j] = (float)(beta2Adam * v[j] + (1 - beta2Adam) * gj * gj);
                p[j] = (float)(p[j] - lr * gj / (Math.Sqrt(v[j] / bc2) + epsAdam));
            }
            return;
        }
        double sumU2 = 0;
        for (int j = 0; j < p.Length; j++)
        {
            double gj = g[j];
            v[j] = (float)(beta2 * v[j] + (1 - beta2) * (gj * gj + _epsilon1));
            double u = gj / Math.Sqrt(v[j]);
            sumU2 += u * u;
        }
        double step = lr / Math.Max(1, Math.Sqrt(sumU2 / p.Length) / _clipThreshold);
        for (int j = 0; j < p.Length; j++) p[j] = (float)(p[j] - step * (g[j] / Math.Sqrt(v[j])));
    }

    private void StepFactored(float[] p, float[] g, float[] r, float[] c, double beta2, float lr)
    {
        int rows = r.Length, cols = c.Length;
        var colSum = new double[cols];
        double total = 0;
        for (int i = 0; i < rows; i++)
        {
            double rowSum = 0;
            for (int j = 0; j < cols; j++)
            {
                double gij = g[i * cols + j], sq = gij * gij + _epsilon1;
                rowSum += sq;
                colSum[j] += sq;
            }
            r[i] = (float)(beta2 * r[i] + (1 - beta2) * rowSum);
            total += r[i];
        }
        for (int j = 0; j < cols; j++) c[j] = (float)(beta2 * c[j] + (1 - beta2) * colSum[j]);

        // U_ij = G_ij / √(R_i·C_j / ΣR) = G_ij·√ΣR / (√R_i·√C_j), in double (R_i·C_j can underflow a float).
        double sqrtTotal = Math.Sqrt(total);
        var invSqrtC = c.Select(x => 1 / Math.Sqrt(x)).ToArray();
        double sumU2 = 0;
        for (int i = 0; i < rows; i++)
        {
            double rowFactor = sqrtTotal / Math.Sqrt(r[i]);
            for (int j = 0; j < cols; j++)
            {
                double u = g[i * cols + j] * rowFactor * invSqrtC[j];
                sumU2 += u * u;
            }
        }
        double step = lr / Math.Max(1, Math.Sqrt(sumU2 / p.Length) / _clipThreshold);
        for (int i = 0; i < rows; i++)
        {
            double rowFactor = sqrtTotal / Math.Sqrt(r[i]);
            for (int j = 0; j < cols; j++) p[i * cols + j] = (float)(p[i * cols + j] - step * (g[i * cols + j] * rowFactor * invSqrtC[j]));
        }
    }
}

/// <summary>
/// How <see cref="Adafactor"/> steps its unfactored (1-D) tensors: as the paper does, or one of two ablations that measure what
/// that treatment is worth (README "The frontier"): the matrices step as Adafactor's in every case.
/// </summary>
public enum AdafactorVectors
{
    /// <summary>The paper's: V ← β̂2·V + (1 − β̂2)·(G² + ε1), U = G/√V, clipped by max(1, RMS(U)/d) per tensor.</summary>
    Adafactor,
    /// <summary>As the dense tensors of a Collins factored setting below its dense threshold: Adam with β1 = 0, constant β2 = 0.999 with bias correction, ε = 1e-8 on √v̂, no clipping.</summary>
    Adam,
    /// <summary>The paper's V and β̂2 schedule, without the update clipping.</summary>
    NoClipping,
}

/// <summary>How Adam-mini partitions one tensor into blocks that share one second moment.</summary>
public enum AdamMiniBlocks
{
    /// <summary>One block: the whole tensor (gains, biases).</summary>
    WholeTensor,
    /// <summary>One block per row of a [rows, cols] tensor (an embedding's tokens or positions).</summary>
    PerRow,
    /// <summary>
    /// One block per group of <see cref="AdamMiniPartition.GroupWidth"/> consecutive columns of a [rows, cols] tensor stored
    /// [in, out] (x·W): width 1 is one block per output neuron, width head_dim one block per attention head.
    /// </summary>
    PerColumnGroup,
}

/// <summary>The blocks of one tensor: their kind, the tensor's [rows, cols] (1 × n for a vector) and the column-group width.</summary>
public readonly record struct AdamMiniPartition(AdamMiniBlocks Kind, int Rows, int Cols, int GroupWidth = 1)
{
    /// <summary>Number of blocks, i.e. of second-moment floats kept.</summary>
    public int BlockCount => Kind switch
    {
        AdamMiniBlocks.PerRow => Rows,
        AdamMiniBlocks.PerColumnGroup => Cols / GroupWidth,
        _ => 1,
    };

    /// <summary>Elements per block.</summary>
    public int BlockLength => Rows * Cols / BlockCount;

    /// <summary>The block that element (i, j) belongs to.</summary>
    public int BlockOf(int i, int j) => Kind switch
    {
        AdamMiniBlocks.PerRow => i,
        AdamMiniBlocks.PerColumnGroup => j / GroupWidth,
        _ => 0,
    };
}

/// <summary>
/// Adam-mini (Zhang et al. 2024, "Adam-mini: Use Fewer Learning Rates To Gain More", Algorithms 1 and 3): full fp32 m and one
/// v per block, v_b ← β2·v_b + (1 − β2)·mean_b(g ⊙ g), the update m̂ / (√v̂_b + ε) with Adam's bias corrections. The
/// partition follows the paper's rule for Transformers (<see cref="PartitionOf"/>), read for TinyLm's [in, out] weights
/// (x·W, so an output neuron is a column): the query, key and value blocks of Wqkv one block per head (columns
/// h·d_head … of each third); Wo, W1 and W2 one block per output neuron (column); the embedding one block per token (row) and
/// the output layer Head one block per token (its output neurons are the vocabulary), as the paper's Algorithm 3
/// partitions embedding and output layers by tokens (later Adam-mini releases keep Adam's per-coordinate v for those two
/// layers instead; here they are per token); the position embedding, an embedding, one block per position (row); the
/// gains and biases one block per tensor. Defaults β = (0.9, 0.999), ε = 1e-8, no weight decay.
/// </summary>
/// <remarks>
/// State bytes: 4·n for m plus 4 per block. For TinyLm: blocks 65 (Embed) + 64 (Pos) + 2·(12 + 64 + 256 + 64 + 6)
/// + 65 (Head) + 3 = 1,001, so 4·112,065 + 4·1,001 = 452,264 B, 4.04 B/param.
/// </remarks>
public sealed class AdamMini : ITrainerOptimizer
{
    private readonly float[][] _m, _v;
    private readonly double[][] _blockSums;
    private readonly AdamMiniPartition[] _partitions;
    private readonly double _beta1, _beta2, _weightDecay;
    private readonly float _epsilon;
    private int _t;

    /// <param name="heads">Attention heads (the query, key and value blocks of Wqkv are split by head).</param>
    public AdamMini(IReadOnlyList<TensorSpec> tensors, int heads, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8,
                    double weightDecay = 0, string name = "AdamMini")
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Name = name;
        _beta1 = beta1; _beta2 = beta2; _epsilon = (float)epsilon; _weightDecay = weightDecay;
        _partitions = tensors.Select(t => PartitionOf(t, heads)).ToArray();
        _m = tensors.Select(t => new float[ModelConfig.Length(t)]).ToArray();
        _v = _partitions.Select(p => new float[p.BlockCount]).ToArray();
        _blockSums = _partitions.Select(p => new double[p.BlockCount]).ToArray();
    }

    public string Name { get; }
    public string Implementation => "anchor: Adam-mini, one v per head / output neuron / token (TinyLm Anchors.cs)";
    public long StateBytes => _m.Sum(m => 4L * m.Length) + _v.Sum(v => 4L * v.Length);
    /// <summary>The partition of each tensor, in spec order.</summary>
    public IReadOnlyList<AdamMiniPartition> Partitions => _partitions;

    /// <summary>
    /// The paper's partition for a TinyLm tensor, by its name and shape: "…Wqkv" [d, 3d] one block per head of each of q, k, v
    /// (groups of d/heads columns); "Embed" and "Pos" one per row; any other 2-D tensor ("…Wo", "…W1", "…W2", "Head") one per
    /// output neuron (column); anything else one block.
    /// </summary>
    public static AdamMiniPartition PartitionOf(TensorSpec tensor, int heads)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.Shape.Length != 2) return new(AdamMiniBlocks.WholeTensor, 1, ModelConfig.Length(tensor));
        int rows = tensor.Shape[0], cols = tensor.Shape[1];
        if (tensor.Name is "Embed" or "Pos") return new(AdamMiniBlocks.PerRow, rows, cols);
        if (tensor.Name.EndsWith("Wqkv", StringComparison.Ordinal))
        {
            if (heads <= 0 || cols % (3 * heads) != 0) throw new ArgumentException($"{tensor.Name}: {cols} columns do not split into q, k, v of {heads} heads.", nameof(heads));
            return new(AdamMiniBlocks.PerColumnGroup, rows, cols, cols / (3 * heads));
        }
        return new(AdamMiniBlocks.PerColumnGroup, rows, cols, 1);
    }

    public void Step(float learningRate, float[][] parameters, float[][] gradients)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(gradients);
        var s = StepScalars.For(++_t, learningRate, _beta1, _beta2, _weightDecay);
        float b1 = (float)_beta1, c1 = (float)(1 - _beta1), b2 = (float)_beta2, c2 = (float)(1 - _beta2), eps = _epsilon;
        Kernels.For(parameters.Length, k =>
        {
            float[] p = parameters[k], g = gradients[k], m = _m[k], v = _v[k];
            var part = _partitions[k];
            var sums = _blockSums[k];
            Array.Clear(sums);
            for (int i = 0; i < part.Rows; i++)
                for (int j = 0; j < part.Cols; j++)
                {
                    double gij = g[i * part.Cols + j];
                    sums[part.BlockOf(i, j)] += gij * gij;
                }
            for (int b = 0; b < v.Length; b++) v[b] = b2 * v[b] + c2 * (float)(sums[b] / part.BlockLength);
            for (int i = 0; i < part.Rows; i++)
                for (int j = 0; j < part.Cols; j++)
                {
                    int e = i * part.Cols + j;
                    float mj = b1 * m[e] + c1 * g[e];
                    m[e] = mj;
                    float denominator = MathF.Sqrt(v[part.BlockOf(i, j)]) * s.InvSqrtBiasCorrection2 + eps;
                    p[e] = p[e] * s.Decay - s.LearningRate * (mj * s.InvBiasCorrection1) / denominator;
                }
        });
    }
}
