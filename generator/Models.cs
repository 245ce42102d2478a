using System;
using System.Linq;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Text;

namespace Collins.Generators
{
    /// <summary>A diagnostic as plain data (no Location/ISymbol), so that it can live in a cached pipeline model.</summary>
    public sealed record DiagnosticInfo(string Id, string? FilePath, TextSpan Span, LinePositionSpan LineSpan, EquatableArray<string> Args)
    {
        public static DiagnosticInfo Create(DiagnosticDescriptor descriptor, Location? location, params string[] args)
        {
            if (location is not null && location.IsInSource)
            {
                var line = location.GetLineSpan();
                return new DiagnosticInfo(descriptor.Id, line.Path, location.SourceSpan, line.Span, new EquatableArray<string>(args));
            }
            return new DiagnosticInfo(descriptor.Id, null, default, default, new EquatableArray<string>(args));
        }

        public Diagnostic ToDiagnostic()
        {
            var descriptor = DiagnosticDescriptors.ById[Id];
            var location = FilePath is null ? Location.None : Location.Create(FilePath, Span, LineSpan);
            return Diagnostic.Create(descriptor, location, Args.Select(a => (object)a).ToArray());
        }
    }

    /// <summary>A containing type declaration to re-open: its keyword ("class", "struct", "record", "record struct", "interface") and name with type parameters.</summary>
    public sealed record ContainingTypeModel(string Keyword, string NameWithTypeParameters);

    /// <summary>One tensor of one optimizer variant, with every constant the emitter writes as a literal.</summary>
    public sealed record TensorModel(
        string Name,
        string Member,
        bool MemberIsStatic,
        bool IsTorchMember,
        EquatableArray<int> Shape,
        int SpecRatio,
        int Sketching,
        int Length,
        bool IsDense,
        int Ratio,
        int Buckets,
        int Rows,
        EquatableArray<int> Rotations,
        EquatableArray<int> Signs,
        uint A, uint B, uint SignA, uint SignB,
        bool IsFactored = false, int FactorRows = 0, int FactorColumns = 0,
        int QuantizedBlocks = 0, int CodeBytes = 0);

    /// <summary>One generated optimizer (one [SketchedOptimizer] application).</summary>
    public sealed record VariantModel(
        string Name,
        string HintName,
        int Ratio,
        double Beta1,
        double Beta2,
        double Epsilon,
        double WeightDecay,
        int Layout,
        int SecondMoment,
        long Seed,
        int DenseThreshold,
        EquatableArray<TensorModel> Tensors,
        double UpdateClipping = 0,
        double Beta2Schedule = 0,
        int FirstMoment = 0,
        int QuantizationBlock = 128,
        bool StochasticRounding = false,
        double MaxGradientNorm = 0);

    /// <summary>An annotated model class and its valid optimizer variants.</summary>
    public sealed record ClassModel(
        string? Namespace,
        EquatableArray<ContainingTypeModel> ContainingTypes,
        string Keyword,
        string ClassName,
        string DisplayName,
        EquatableArray<VariantModel> Variants);

    /// <summary>The transform's output: the model (null when nothing may be generated) and the diagnostics.</summary>
    public sealed record ClassResult(ClassModel? Model, EquatableArray<DiagnosticInfo> Diagnostics);
}
