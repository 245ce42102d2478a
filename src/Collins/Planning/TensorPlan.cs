using Collins.Planning;
using Collins.Hashing;

namespace Collins;

/// <summary>
/// Everything the optimizer needs to know about one tensor: its length, whether it is sketched,
/// its buckets, rows and hash constants. Built from <see cref="HashDerivation"/>, the same code the
/// source generator runs at compile time, so a generated optimizer and a run-time one agree exactly.
/// </summary>
public sealed class TensorPlan
{
    private readonly int[] _rotations;
    private readonly int[] _signs;

    public TensorPlan(TensorSpec spec, OptimizerSettings settings)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        if (string.IsNullOrEmpty(spec.Name)) throw new ArgumentException("A tensor needs a non-empty name.", nameof(spec));
        if (spec.Shape is null || spec.Shape.Length == 0) throw new ArgumentException($"Tensor '{spec.Name}' has no shape.", nameof(spec));
        long length = 1;
        foreach (int dim in spec.Shape)
        {
            if (dim <= 0) throw new ArgumentException($"Tensor '{spec.Name}' has a dimension {dim}; every dimension must be > 0.", nameof(spec));
            length *= dim;
            if (length > HashDerivation.MaxTensorLength)
                throw new ArgumentException($"Tensor '{spec.Name}' has more than {HashDerivation.MaxTensorLength} elements, which the kernels cannot index.", nameof(spec));
        }
        if (spec.Ratio < 0) throw new ArgumentException($"Tensor '{spec.Name}' has Ratio {spec.Ratio}; it must be >= 1 (or 0 to inherit).", nameof(spec));

        Name = spec.Name;
        Shape = (int[])spec.Shape.Clone();
        Length = (int)length;
        Layout = settings.Layout;
        SecondMoment = settings.SecondMoment;
        HasFirstMoment = settings.Beta1 != 0;
        int ratio = spec.Ratio == 0 ? settings.Ratio : spec.Ratio;
        IsDense = SettingsRules.IsDense(ratio, (int)spec.Sketching, Length, settings.DenseThreshold);
        Ratio = IsDense ? 1 : ratio;
        Buckets = IsDense ? Length : HashDerivation.Buckets(Length, ratio);
        Rows = IsDense ? 1 : HashDerivation.Rows(Length, Buckets);
        IsFactored = !IsDense && SecondMoment == SecondMomentEstimate.Factored;
        FactorColumns = IsFactored ? SettingsRules.FactorColumns(spec.Shape) : 0;
        FactorRows = IsFactored ? Length / FactorColumns : 0;
        FirstMoment = SettingsRules.TensorIsQuantized(IsFactored, settings.Beta1, (int)settings.FirstMoment) ? settings.FirstMoment : FirstMomentStorage.Sketch;
        if (IsQuantized && FirstMoment == FirstMomentStorage.Quantized8 && Length > Array.MaxLength)
            throw new ArgumentException($"Tensor '{spec.Name}' has {Length} elements: its 8-bit first-moment codes (one byte each) would exceed the largest .NET array ({Array.MaxLength} bytes). Use FirstMoment = Quantized4, or split the tensor.", nameof(spec));
        if (IsQuantized)
        {
            QuantizationBlock = settings.QuantizationBlock;
            QuantizedBlocks = (int)SettingsRules.QuantizedBlocks(Length, QuantizationBlock);
            FirstMomentCodeBytes = (int)SettingsRules.QuantizedCodeBytes((int)FirstMoment, Length, QuantizationBlock);
            QuantizationLevels = SettingsRules.QuantizationLevels((int)FirstMoment);
        }
        bool hashed = !IsDense && !IsFactored;   // a factored tensor keeps no sketch (β1 = 0 and v factored): no hash
        _rotations = new int[!hashed || Layout != SketchLayout.Rotation ? 0 : Rows];
        _signs = new int[_rotations.Length];
        if (hashed && Layout == SketchLayout.Rotation)
            HashDerivation.Rotation(settings.Seed, Name, Rows, Buckets, _rotations, _signs);
        if (hashed && Layout == SketchLayout.Universal)
        {
            HashDerivation.Universal(settings.Seed, Name, out uint a, out uint b, out uint sa, out uint sb);
            UniversalA = a; UniversalB = b; UniversalSignA = sa; UniversalSignB = sb;
        }
    }

    public string Name { get; }
    public IReadOnlyList<int> Shape { get; }
    /// <summary>d: the number of elements.</summary>
    public int Length { get; }
    /// <summary>Effective ratio (1 when dense).</summary>
    public int Ratio { get; }
    /// <summary>True when the moments are exact dense Adam moments of length d.</summary>
    public bool IsDense { get; }
    public SketchLayout Layout { get; }
    public SecondMomentEstimate SecondMoment { get; }
    /// <summary>False when Beta1 = 0: no first-moment storage at all.</summary>
    public bool HasFirstMoment { get; }
    /// <summary>k: buckets per moment (d when dense).</summary>
    public int Buckets { get; }
    /// <summary>Rows of the Rotation view, ceil(d / k); 1 when dense.</summary>
    public int Rows { get; }
    /// <summary>Rotation ρ_r per row (Rotation layout only).</summary>
    public ReadOnlySpan<int> Rotations => _rotations;
    /// <summary>Sign σ_r per row (Rotation layout only).</summary>
    public ReadOnlySpan<int> Signs => _signs;
    public uint UniversalA { get; }
    public uint UniversalB { get; }
    public uint UniversalSignA { get; }
    public uint UniversalSignB { get; }

    /// <summary>
    /// True for a sketched tensor with the <see cref="SecondMomentEstimate.Factored"/> estimate: v is kept as
    /// <see cref="FactorRows"/> row means and <see cref="FactorColumns"/> column means of g², and the first moment is either not kept
    /// (β1 = 0) or block-quantised (<see cref="IsQuantized"/>).
    /// </summary>
    public bool IsFactored { get; }
    /// <summary>R of the factored view: the product of every dimension but the last, the length of a vector (0 unless <see cref="IsFactored"/>).</summary>
    public int FactorRows { get; }
    /// <summary>C of the factored view: the last dimension, 1 for a vector (whose v̂ is then its exact v; 0 unless <see cref="IsFactored"/>).</summary>
    public int FactorColumns { get; }

    /// <summary>
    /// How this tensor stores m: <see cref="FirstMomentStorage.Quantized8"/> or <see cref="FirstMomentStorage.Quantized4"/> for a factored
    /// tensor of an optimizer with a quantised first moment, <see cref="FirstMomentStorage.Sketch"/> otherwise (dense tensors
    /// keep exact m, sketched ones the Count-Sketch).
    /// </summary>
    public FirstMomentStorage FirstMoment { get; }
    /// <summary>True when m is block-quantised: <see cref="QuantizedBlocks"/> fp32 scales and <see cref="FirstMomentCodeBytes"/> bytes of codes.</summary>
    public bool IsQuantized => FirstMoment != FirstMomentStorage.Sketch;
    /// <summary>Entries per scale of the quantised m (0 unless <see cref="IsQuantized"/>).</summary>
    public int QuantizationBlock { get; }
    /// <summary>Blocks of the quantised m, ceil(d / block): one fp32 scale each (0 unless <see cref="IsQuantized"/>).</summary>
    public int QuantizedBlocks { get; }
    /// <summary>Bytes of codes of the quantised m: d for 8 bits, blocks·block/2 for 4 bits (0 unless <see cref="IsQuantized"/>).</summary>
    public int FirstMomentCodeBytes { get; }
    /// <summary>Q, the largest code magnitude: 127 (8 bits) or 7 (4 bits); 0 unless <see cref="IsQuantized"/>.</summary>
    public int QuantizationLevels { get; }

    /// <summary>Floats of the first moment: k (the block scales when quantised), or 0 when β1 = 0.</summary>
    public int FirstMomentFloats => (int)SettingsRules.FirstMomentFloats(HasFirstMoment, Buckets, QuantizedBlocks);
    /// <summary>Floats of the second moment: R + C when factored, k otherwise (d when dense).</summary>
    public int SecondMomentFloats => (int)SettingsRules.SecondMomentFloats(Buckets, IsFactored, FactorRows, FactorColumns);

    /// <summary>Floats of optimizer state: <see cref="FirstMomentFloats"/> + <see cref="SecondMomentFloats"/>.</summary>
    public long StateFloats => (long)FirstMomentFloats + SecondMomentFloats;

    /// <summary>Bytes of optimizer state: 4·<see cref="StateFloats"/> + <see cref="FirstMomentCodeBytes"/> (<see cref="SettingsRules.TensorStateBytes"/>, which the generated code reports).</summary>
    public long StateBytes => StateFloats * sizeof(float) + FirstMomentCodeBytes;

    /// <summary>h1(i): the bucket of entry i.</summary>
    public int Bucket(int i)
    {
        if (IsDense) return i;
        if (IsFactored) throw new InvalidOperationException($"Tensor '{Name}' has a factored second moment and no sketch: it has no buckets.");
        if (Layout == SketchLayout.Rotation)
        {
            int r = i / Buckets, c = i - r * Buckets;
            int b = c + _rotations[r];
            return b >= Buckets ? b - Buckets : b;
        }
        return HashDerivation.UniversalBucket(UniversalA, UniversalB, Buckets, i);
    }

    /// <summary>h2(i): the sign (±1) of entry i.</summary>
    public int Sign(int i)
    {
        if (IsDense) return 1;
        if (Layout == SketchLayout.Rotation) return _signs[i / Buckets];
        return HashDerivation.UniversalSign(UniversalSignA, UniversalSignB, i);
    }

    /// <summary>Number of entries that hash to each bucket (computed, not stored by the optimizer).</summary>
    public int[] Occupancy()
    {
        var counts = new int[Buckets];
        for (int i = 0; i < Length; i++) counts[Bucket(i)]++;
        return counts;
    }
}
