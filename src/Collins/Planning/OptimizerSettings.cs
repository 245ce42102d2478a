using Collins.Planning;

namespace Collins;

/// <summary>
/// The settings of one Count-Sketch Adam optimizer: the run-time twin of
/// <see cref="SketchedOptimizerAttribute"/>, with the same names and defaults.
/// </summary>
public sealed record OptimizerSettings
{
    public int Ratio { get; init; } = SettingsRules.Ratio;
    public double Beta1 { get; init; } = SettingsRules.Beta1;
    public double Beta2 { get; init; } = SettingsRules.Beta2;
    public double Epsilon { get; init; } = SettingsRules.Epsilon;
    public double WeightDecay { get; init; } = SettingsRules.WeightDecay;
    /// <summary>
    /// Hash layout of the Count-Sketch tensors; see <see cref="SketchedOptimizerAttribute.Layout"/>. Ignored when no tensor is hashed:
    /// under <see cref="SecondMomentEstimate.Factored"/> (each tensor is factored or dense) or when every tensor is dense. A checkpoint
    /// still records it and is refused by an optimizer with another layout.
    /// </summary>
    public SketchLayout Layout { get; init; } = SketchLayout.Rotation;
    public SecondMomentEstimate SecondMoment { get; init; } = SecondMomentEstimate.Sum;
    public long Seed { get; init; } = SettingsRules.Seed;
    public int DenseThreshold { get; init; } = SettingsRules.DenseThreshold;
    /// <summary>
    /// Update clipping threshold d of the factored estimate (0: off); see <see cref="SketchedOptimizerAttribute.UpdateClipping"/>. Needs
    /// <see cref="SecondMomentEstimate.Factored"/> (<see cref="Validate"/> throws otherwise); ignored by dense tensors, so it has no effect
    /// when every tensor is dense.
    /// </summary>
    public double UpdateClipping { get; init; } = SettingsRules.UpdateClipping;
    /// <summary>
    /// Exponent c of the factored estimate's β2 schedule, β̂2 = 1 − t^−c (0: off); see <see cref="SketchedOptimizerAttribute.Beta2Schedule"/>.
    /// Needs <see cref="SecondMomentEstimate.Factored"/> (<see cref="Validate"/> throws otherwise); dense tensors keep the constant
    /// <see cref="Beta2"/>, so it has no effect when every tensor is dense.
    /// </summary>
    public double Beta2Schedule { get; init; } = SettingsRules.Beta2Schedule;
    /// <summary>
    /// How sketched tensors store m; see <see cref="SketchedOptimizerAttribute.FirstMoment"/>. A quantised storage needs
    /// <see cref="SecondMomentEstimate.Factored"/> and <see cref="Beta1"/> &gt; 0 (<see cref="Validate"/> throws otherwise) and applies to the
    /// factored tensors only: dense tensors keep an fp32 m, so it has no effect on the step when every tensor is dense (a checkpoint is
    /// still written in format version 2 and records it).
    /// </summary>
    public FirstMomentStorage FirstMoment { get; init; } = FirstMomentStorage.Sketch;
    /// <summary>
    /// Entries per scale of a quantised first moment; see <see cref="SketchedOptimizerAttribute.QuantizationBlock"/>. Validated whatever
    /// <see cref="FirstMoment"/> is, and ignored when no tensor keeps a quantised first moment (<see cref="FirstMomentStorage.Sketch"/>, or
    /// every tensor dense).
    /// </summary>
    public int QuantizationBlock { get; init; } = SettingsRules.QuantizationBlock;
    /// <summary>
    /// Stochastic rounding of quantised first-moment codes; see <see cref="SketchedOptimizerAttribute.StochasticRounding"/>. Ignored when no
    /// tensor keeps a quantised first moment (<see cref="FirstMomentStorage.Sketch"/>, or every tensor dense).
    /// </summary>
    public bool StochasticRounding { get; init; } = SettingsRules.StochasticRounding;
    /// <summary>Global gradient-norm clipping bound, as <c>clip_grad_norm_</c> (0: off); see <see cref="SketchedOptimizerAttribute.MaxGradientNorm"/>.</summary>
    public double MaxGradientNorm { get; init; } = SettingsRules.MaxGradientNorm;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (!SettingsRules.RatioIsValid(Ratio)) throw new ArgumentException($"Ratio must be at least 1, got {Ratio}.", nameof(Ratio));
        if (!SettingsRules.BetaIsValid(Beta1)) throw new ArgumentException($"Beta1 must be in [0, 1) and below 1 as a float, got {Beta1}.", nameof(Beta1));
        if (!SettingsRules.BetaIsValid(Beta2)) throw new ArgumentException($"Beta2 must be in [0, 1) and below 1 as a float, got {Beta2}.", nameof(Beta2));
        if (!SettingsRules.EpsilonIsValid(Epsilon)) throw new ArgumentException($"Epsilon must be finite and > 0, also as a float, got {Epsilon}.", nameof(Epsilon));
        if (!SettingsRules.WeightDecayIsValid(WeightDecay)) throw new ArgumentException($"WeightDecay must be finite and >= 0, got {WeightDecay}.", nameof(WeightDecay));
        if (!SettingsRules.SecondMomentIsDefined((int)SecondMoment)) throw new ArgumentException($"SecondMoment {(int)SecondMoment} is not a defined estimate.", nameof(SecondMoment));
        if (!SettingsRules.FirstMomentIsDefined((int)FirstMoment)) throw new ArgumentException($"FirstMoment {(int)FirstMoment} is not a defined storage.", nameof(FirstMoment));
        if (!SettingsRules.FactoredAllowsBeta1((int)SecondMoment, Beta1, (int)FirstMoment))
            throw new ArgumentException($"SecondMoment = Factored keeps no Count-Sketch first moment and needs Beta1 = 0 (or FirstMoment = Quantized8 / Quantized4), got {Beta1}.", nameof(Beta1));
        if (!SettingsRules.QuantizationBlockIsValid(QuantizationBlock))
            throw new ArgumentException($"QuantizationBlock must be a power of two from 8 to 65536, got {QuantizationBlock}.", nameof(QuantizationBlock));
        if (!SettingsRules.QuantizedFirstMomentApplies((int)FirstMoment, (int)SecondMoment, Beta1))
            throw new ArgumentException($"FirstMoment = {FirstMoment} needs SecondMoment = Factored and Beta1 > 0, got SecondMoment = {SecondMoment}, Beta1 = {Beta1}.", nameof(FirstMoment));
        if (!Enum.IsDefined(Layout)) throw new ArgumentException($"Layout {(int)Layout} is not a defined layout.", nameof(Layout));
        if (!SettingsRules.UpdateClippingIsValid(UpdateClipping)) throw new ArgumentException($"UpdateClipping must be finite and >= 0 (0: off), got {UpdateClipping}.", nameof(UpdateClipping));
        if (!SettingsRules.UpdateClippingApplies(UpdateClipping, (int)SecondMoment))
            throw new ArgumentException($"UpdateClipping applies to SecondMoment = Factored only, got {SecondMoment}.", nameof(UpdateClipping));
        if (!SettingsRules.Beta2ScheduleIsValid(Beta2Schedule)) throw new ArgumentException($"Beta2Schedule must be 0 (off) or in (0, 1], got {Beta2Schedule}.", nameof(Beta2Schedule));
        if (!SettingsRules.Beta2ScheduleApplies(Beta2Schedule, (int)SecondMoment))
            throw new ArgumentException($"Beta2Schedule applies to SecondMoment = Factored only, got {SecondMoment}.", nameof(Beta2Schedule));
        if (!SettingsRules.MaxGradientNormIsValid(MaxGradientNorm))
            throw new ArgumentException($"MaxGradientNorm must be finite and >= 0 (0: off), got {MaxGradientNorm}.", nameof(MaxGradientNorm));
        if (!SettingsRules.DenseThresholdIsValid(DenseThreshold)) throw new ArgumentException($"DenseThreshold must be >= 0, got {DenseThreshold}.", nameof(DenseThreshold));
    }
}

/// <summary>A tensor declared at run time: the twin of <see cref="TensorAttribute"/>.</summary>
/// <param name="Name">The tensor's name; with the seed it determines the hash constants.</param>
/// <param name="Shape">The tensor's shape; the product is its length.</param>
/// <param name="Ratio">
/// Per-tensor ratio override; 0 inherits the optimizer's. Under <see cref="SecondMomentEstimate.Factored"/> it only decides whether the
/// tensor is dense (an effective ratio of 1) or factored: a factored tensor keeps R + C floats of v whatever its ratio.
/// </param>
/// <param name="Sketching">Whether the tensor is sketched.</param>
public sealed record TensorSpec(string Name, int[] Shape, int Ratio = 0, TensorSketching Sketching = TensorSketching.Auto)
{
    /// <summary>Convenience for a 1-D tensor.</summary>
    public TensorSpec(string name, int length) : this(name, new[] { length }) { }
}
