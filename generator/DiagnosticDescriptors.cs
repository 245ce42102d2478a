using System.Collections.Generic;
using Microsoft.CodeAnalysis;

namespace Collins.Generators
{
    /// <summary>
    /// Every diagnostic the Collins generator reports. IDs are stable (see AnalyzerReleases.Shipped.md);
    /// each links to the README's diagnostics section.
    /// </summary>
    public static class DiagnosticDescriptors
    {
        private const string Category = "Collins.Generators";

        /// <summary>
        /// The project's home page (also the package's <c>PackageProjectUrl</c>/<c>RepositoryUrl</c>, which a package test
        /// checks against this constant). Every help link is an anchor of the README's Diagnostics table there.
        /// </summary>
        public const string ProjectUrl = "https://github.com/collins-generators/collins";

        private const string HelpBase = ProjectUrl + "#diagnostics";

        private static DiagnosticDescriptor Make(string id, string title, string message, DiagnosticSeverity severity)
            => new DiagnosticDescriptor(id, title, message, Category, severity, isEnabledByDefault: true,
                                        helpLinkUri: HelpBase + "-" + id.ToLowerInvariant());

        public static readonly DiagnosticDescriptor ClassNotPartial = Make("COL001",
            "Optimizer model class must be partial",
            "Class '{0}' has [SketchedOptimizer] but is not declared partial; declare it 'partial' so the optimizer can be generated inside it",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor ContainingTypeNotPartial = Make("COL002",
            "Containing type must be partial",
            "Type '{0}' contains the [SketchedOptimizer] class '{1}' but is not declared partial",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor GenericClass = Make("COL003",
            "Optimizer model class cannot be generic",
            "Class '{0}' has [SketchedOptimizer] but is generic; generated optimizers are specialised to constant shapes and need a non-generic class",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidRatio = Make("COL004",
            "Invalid ratio",
            "{0} has Ratio {1}; it must be at least 1 (a tensor may also use 0 to inherit the optimizer's ratio)",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidBeta = Make("COL005",
            "Invalid beta",
            "Optimizer '{0}' has {1} = {2}; it must be in [0, 1), also when rounded to float",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidEpsilon = Make("COL006",
            "Invalid epsilon",
            "Optimizer '{0}' has Epsilon = {1}; it must be finite and greater than 0, also when rounded to float",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidWeightDecay = Make("COL007",
            "Invalid weight decay",
            "Optimizer '{0}' has WeightDecay = {1}; it must be finite and at least 0",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidDimension = Make("COL008",
            "Invalid tensor dimension",
            "Tensor '{0}' has an invalid shape: {1}; every dimension must be a positive compile-time constant",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor TensorTooLarge = Make("COL009",
            "Tensor too large",
            "Tensor '{0}' has {1} elements; the kernels index at most {2}",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor DuplicateTensorName = Make("COL010",
            "Duplicate tensor name",
            "Tensor name '{0}' is used by more than one member of '{1}'; tensor names must be distinct",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidTensorName = Make("COL011",
            "Invalid tensor name",
            "Tensor name '{0}' is not usable: {1}",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor NoTensors = Make("COL012",
            "No tensors",
            "Class '{0}' has [SketchedOptimizer] but no field or property with [Tensor]",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor RatioExceedsLength = Make("COL013",
            "Ratio larger than the tensor",
            "Tensor '{0}' has {1} elements but is sketched with ratio {2} in optimizer '{3}': all its entries share one bucket",
            DiagnosticSeverity.Warning);

        public static readonly DiagnosticDescriptor DuplicateVariantName = Make("COL014",
            "Duplicate optimizer name",
            "Class '{0}' has more than one [SketchedOptimizer] named '{1}'; give each variant a distinct Name",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidVariantName = Make("COL015",
            "Invalid optimizer name",
            "Optimizer name '{0}' is not usable: {1}",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidDenseThreshold = Make("COL016",
            "Invalid dense threshold",
            "Optimizer '{0}' has DenseThreshold = {1}; it must be at least 0",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor TooManyRows = Make("COL017",
            "Too many Rotation rows",
            "Tensor '{0}' would have {1} Rotation rows with ratio {2} in optimizer '{3}'; the generated kernels unroll one statement per row and allow at most {4}",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor UnsupportedTensorType = Make("COL018",
            "Unsupported tensor member type",
            "Member '{0}' has [Tensor] but its type is '{1}'; declare it as float[] (a one-dimensional float array field or property)",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor WriteOnlyTensorProperty = Make("COL021",
            "[Tensor] property without a getter",
            "Property '{0}' has [Tensor] but no get accessor; the generated Step(lr, model, gradients) reads it: add a getter (it may be private)",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor MixedTensorMemberKinds = Make("COL022",
            "float[] and TorchSharp tensor members in one model",
            "Class '{0}' declares [Tensor] member '{1}' as float[] and '{2}' as a TorchSharp tensor; declare every tensor of the class the same way",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor TorchAdapterMissing = Make("COL023",
            "TorchSharp tensor members need Collins.Generators.TorchSharp",
            "Class '{0}' declares [Tensor] member '{1}' as a TorchSharp tensor, which the generated Step reads through the Collins.TorchSharp adapter; add a PackageReference to Collins.Generators.TorchSharp",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor LanguageVersionTooLow = Make("COL024",
            "C# 13 or later needed",
            "Class '{0}' has [SketchedOptimizer], but this project compiles with C# {1}; the generated optimizer needs C# 13 or later (ref struct interfaces, collection expressions, static abstract interface members): set <LangVersion>13</LangVersion> or later, or remove the attribute",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor FactoredNeedsBeta1Zero = Make("COL025",
            "The factored second moment needs Beta1 = 0",
            "Optimizer '{0}' has SecondMoment = Factored and Beta1 = {1}; the factored estimate keeps no Count-Sketch first moment: set Beta1 = 0, keep m block-quantised (FirstMoment = FirstMomentStorage.Quantized8 or Quantized4), or choose SecondMoment Sum or Mean",
            DiagnosticSeverity.Error);


        public static readonly DiagnosticDescriptor InvalidUpdateClipping = Make("COL027",
            "Invalid update clipping",
            "Optimizer '{0}' has UpdateClipping = {1}; {2}",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidBeta2Schedule = Make("COL028",
            "Invalid β2 schedule",
            "Optimizer '{0}' has Beta2Schedule = {1}; {2}",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InvalidQuantizedFirstMoment = Make("COL030",
            "Invalid quantised first moment",
            "Optimizer '{0}' has FirstMoment = {1}; {2}",
            DiagnosticSeverity.Error);


        public static readonly DiagnosticDescriptor QuantizationSettingWithoutQuantizedMoment = Make("COL032",
            "Quantisation setting without a quantised first moment",
            "Optimizer '{0}' has {1}, but no tensor keeps a block-quantised first moment ({2}), so it has no effect: {3}",
            DiagnosticSeverity.Warning);

        public static readonly DiagnosticDescriptor FactoredSettingWithoutFactoredTensor = Make("COL033",
            "Factored-estimate setting without a factored tensor",
            "Optimizer '{0}' has {1}, but no tensor is factored (every tensor stays dense: fewer entries than DenseThreshold = {2}, an effective Ratio of 1, or Sketching = Dense; dense tensors keep AdamW's fp32 moments), so it has no effect: {3}",
            DiagnosticSeverity.Warning);

        public static readonly DiagnosticDescriptor LayoutWithoutHashedTensor = Make("COL034",
            "Layout without a hashed tensor",
            "Optimizer '{0}' has Layout = {1}, but no tensor is hashed ({2}), so the layout has no effect on the step or the state: remove Layout",
            DiagnosticSeverity.Warning);

        public static readonly DiagnosticDescriptor TensorRatioWithoutEffect = Make("COL035",
            "Tensor ratio without effect on a factored tensor",
            "Tensor '{0}' has Ratio = {1}, but every optimizer of '{2}' factors it, and a factored tensor keeps R + C floats of v whatever its ratio, so the ratio has no effect: remove Ratio (Ratio = 1 would keep the tensor dense)",
            DiagnosticSeverity.Warning);

        public static readonly DiagnosticDescriptor InvalidMaxGradientNorm = Make("COL029",
            "Invalid gradient-norm clipping bound",
            "Optimizer '{0}' has MaxGradientNorm = {1}; it must be finite and >= 0: use 0 (off) or the bound on the global gradient norm, as clip_grad_norm_'s max_norm (1.0 is usual for transformers)",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor TensorOutsideOptimizer = Make("COL019",
            "[Tensor] outside a [SketchedOptimizer] class",
            "Member '{0}' has [Tensor] but '{1}' has no [SketchedOptimizer], so no optimizer uses it; add [SketchedOptimizer] to '{1}' or remove [Tensor]",
            DiagnosticSeverity.Warning);

        public static readonly DiagnosticDescriptor InitializerLengthMismatch = Make("COL020",
            "Initialiser length differs from the tensor shape",
            "Tensor '{0}' has shape [{1}] ({2} elements) but its initialiser creates an array of {3} elements; allocate new float[{2}]",
            DiagnosticSeverity.Error);

        public static readonly DiagnosticDescriptor InternalError = Make("COL999",
            "Collins generator internal error",
            "The Collins generator failed unexpectedly and generated nothing for this class: {0}",
            DiagnosticSeverity.Error);

        /// <summary>All descriptors, by ID.</summary>
        public static readonly IReadOnlyDictionary<string, DiagnosticDescriptor> ById = Index(
            ClassNotPartial, ContainingTypeNotPartial, GenericClass, InvalidRatio, InvalidBeta, InvalidEpsilon,
            InvalidWeightDecay, InvalidDimension, TensorTooLarge, DuplicateTensorName, InvalidTensorName, NoTensors,
            RatioExceedsLength, DuplicateVariantName, InvalidVariantName, InvalidDenseThreshold, TooManyRows, UnsupportedTensorType,
            TensorOutsideOptimizer, InitializerLengthMismatch, WriteOnlyTensorProperty, MixedTensorMemberKinds, TorchAdapterMissing, LanguageVersionTooLow, FactoredNeedsBeta1Zero, InvalidUpdateClipping, InvalidBeta2Schedule, InvalidQuantizedFirstMoment, InternalError,
            InvalidMaxGradientNorm, QuantizationSettingWithoutQuantizedMoment, FactoredSettingWithoutFactoredTensor, LayoutWithoutHashedTensor,
            TensorRatioWithoutEffect);

        private static Dictionary<string, DiagnosticDescriptor> Index(params DiagnosticDescriptor[] all)
        {
            var d = new Dictionary<string, DiagnosticDescriptor>();
            foreach (var x in all) d.Add(x.Id, x);
            return d;
        }
    }
}
