using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;
using System.Threading;
using Collins.Hashing;
using Collins.Planning;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Collins.Generators
{
    /// <summary>
    /// Turns an annotated class into an equatable <see cref="ClassModel"/> plus diagnostics. Reads
    /// attribute values from <see cref="AttributeData"/> and derives every hash constant with the
    /// linked <see cref="HashDerivation"/>, mirroring <c>Collins.TensorPlan</c>'s dense/ratio rules.
    /// </summary>
    internal static class ModelBuilder
    {
        // Names a tensor cannot take: members of the generated type and of SketchedOptimizerBase.
        private static readonly HashSet<string> Reserved = new HashSet<string>(StringComparer.Ordinal)
        {
            // Public and protected members of SketchedOptimizerBase (a nested tensor class of the same name would hide them).
            "Settings", "Tensors", "Accelerator", "StepCount", "SkippedSteps", "NonFinitePolicy", "MaxThreads", "LastNonFinite",
            "StateBytes", "DenseAdamWStateBytes", "ParameterCount", "CopyFirstMoment", "CopySecondMoment",
            "Save", "Load", "SaveToFile", "LoadFromFile", "CheckpointFormatVersion", "Dispose", "OnDispose",
            "FirstMoments", "SecondMoments", "SumM", "SumV", "DeviceFirstMoments", "DeviceSecondMoments", "DeviceSumM", "DeviceSumV",
            "DeviceFlag", "DeviceFlagOf", "ClearDeviceFlags", "ReadDeviceVerdict", "BeginStep", "EndStep", "AbortStep", "StepCpu",
            "StepDevice", "LoadDeviceKernels", "CreateDeviceKernels", "DeviceAccumulate", "DeviceApply", "ValidateTensor", "ValidateBufferCounts",
            "ValidateBuffers", "ValidateDeviceBuffers", "NoteFinite", "VerifyPlan", "VerifyFactoredPlan", "NullTensorMember",
            "Equals", "GetHashCode", "ToString", "GetType", "MemberwiseClone", "Finalize",
            // Members of the generated type itself.
            "Step", "DefaultSettings", "TensorSpecs",
            // Members of the generated Step-buffer structs (their fields are named after the tensors, and `tensor` is the
            // parameter of their indexers).
            "GradientCount", "Parameters", "Gradient", "tensor",
            // The model-typed Step's gradient holder (Optimizer.Gradients) and its members.
            "Gradients", "Clear",
            // Names that generated bodies use next to tensor names: the span Steps' parameter and local (learningRate, buffers),
            // __CreatePlans' locals (settings, plans, i) and LoadDeviceKernels' local (accelerator), where a tensor class of the
            // same name would be shadowed.
            "learningRate", "buffers", "settings", "plans", "i", "accelerator",
        };

        // Members declared by the generated optimizer type itself (besides tensor classes and "__"-prefixed helpers):
        // the optimizer cannot take one of these names.
        private static readonly HashSet<string> OptimizerMembers = new HashSet<string>(StringComparer.Ordinal)
        {
            "Step", "DefaultSettings", "TensorSpecs",
        };

        // Members of the generated per-tensor class (Emitter.EmitTensor and the layout emitters): a tensor of the same name
        // would be a class with a member named like itself (CS0542). Which ones exist depends on the layout and on density.
        private static readonly string[] TensorClassMembers =
            { "Index", "Length", "Buckets", "Rows", "Ratio", "IsDense", "StateBytes", "DenseAdamWStateBytes" };
        private static readonly string[] DenseClassMembers = Array.Empty<string>();   // constants only since the engine split
        private static readonly string[] RotationClassMembers = { "Rotations", "Signs", "BucketCount", "VisitRows" };
        private static readonly string[] FactoredClassMembers = { "FactorRows", "FactorColumns" };
        private static readonly string[] QuantizedClassMembers = { "FactorRows", "FactorColumns", "QuantizedBlocks", "CodeBytes" };
        private static readonly string[] UniversalClassMembers =
        {
            "A", "B", "SignA", "SignB", "BucketCount",
        };

        private sealed class TensorDecl
        {
            public string Name = "";
            public string Member = "";
            public bool MemberIsStatic;
            public bool IsTorchMember;
            public int[] Shape = Array.Empty<int>();
            public long Length;
            public int SpecRatio;
            public int Sketching;
            public Location? Location;
            public Location? NameLocation;
            /// <summary>The <c>Ratio = n</c> argument when it is written on the attribute (null when the ratio is inherited by default).</summary>
            public Location? RatioLocation;
            public bool Valid = true;
        }

        public static ClassResult Build(GeneratorAttributeSyntaxContext ctx, CancellationToken ct)
        {
            var diagnostics = new List<DiagnosticInfo>();
            var symbol = (INamedTypeSymbol)ctx.TargetSymbol;
            var node = (TypeDeclarationSyntax)ctx.TargetNode;

            // A partial class may carry [SketchedOptimizer] on several of its declarations. The transform runs once per such
            // declaration; only the one holding the first attribute builds the class (with every attribute of every
            // declaration), so that variants are checked together and no hint name is added twice.
            var attributes = symbol.GetAttributes()
                .Where(a => a.AttributeClass?.ToDisplayString() == SketchedOptimizerGenerator.AttributeMetadataName)
                .ToList();
            if (attributes.Count == 0) attributes.AddRange(ctx.Attributes);
            var firstApplication = attributes[0].ApplicationSyntaxReference;
            if (firstApplication is not null
                && (firstApplication.SyntaxTree != node.SyntaxTree || !node.Span.Contains(firstApplication.Span)))
                return new ClassResult(null, new EquatableArray<DiagnosticInfo>(Array.Empty<DiagnosticInfo>()));
            var classLocation = node.Identifier.GetLocation();
            bool ok = true;

            if (!node.Modifiers.Any(m => m.IsKind(SyntaxKind.PartialKeyword)))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ClassNotPartial, classLocation, symbol.Name));
                ok = false;
            }
            if (symbol.IsGenericType)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.GenericClass, classLocation, symbol.Name));
                ok = false;
            }
            if (node.SyntaxTree.Options is CSharpParseOptions { LanguageVersion: var language } && language < LanguageVersion.CSharp13)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LanguageVersionTooLow, classLocation, symbol.Name,
                    language.ToDisplayString()));
                ok = false;
            }

            // Containing types, outermost first.
            var containing = new List<ContainingTypeModel>();
            for (var parent = node.Parent as TypeDeclarationSyntax; parent is not null; parent = parent.Parent as TypeDeclarationSyntax)
            {
                if (!parent.Modifiers.Any(m => m.IsKind(SyntaxKind.PartialKeyword)))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ContainingTypeNotPartial, parent.Identifier.GetLocation(),
                        parent.Identifier.ValueText, symbol.Name));
                    ok = false;
                }
                containing.Insert(0, new ContainingTypeModel(Keyword(parent), parent.Identifier.ValueText + TypeParameters(parent)));
            }

            // Tensors: fields and properties with [Tensor], in declaration order.
            var tensorAttribute = ctx.SemanticModel.Compilation.GetTypeByMetadataName(SketchedOptimizerGenerator.TensorAttributeMetadataName);
            var tensors = new List<TensorDecl>();
            foreach (var member in symbol.GetMembers())
            {
                ct.ThrowIfCancellationRequested();
                if (member is not IFieldSymbol && member is not IPropertySymbol) continue;
                foreach (var attr in member.GetAttributes())
                {
                    if (tensorAttribute is null || !SymbolEqualityComparer.Default.Equals(attr.AttributeClass, tensorAttribute)) continue;
                    tensors.Add(ReadTensor(member, attr, ctx.SemanticModel, diagnostics, ct));
                }
            }
            if (tensors.Count == 0)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.NoTensors, classLocation, symbol.Name));
                ok = false;
            }
            // TorchSharp members: all of the class's tensors or none (one model-typed Step reads them all the same way), and the
            // adapter package that the generated Step calls must be referenced.
            var torch = tensors.Where(t => t.Valid && t.IsTorchMember).ToList();
            if (torch.Count > 0 && torch.Count < tensors.Count(t => t.Valid))
            {
                var first = tensors.First(t => t.Valid && !t.IsTorchMember);
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.MixedTensorMemberKinds, first.Location ?? classLocation, symbol.Name, first.Member, torch[0].Member));
                ok = false;
            }
            else if (torch.Count > 0 && ctx.SemanticModel.Compilation.GetTypeByMetadataName(TorchStepHelperMetadataName) is null)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TorchAdapterMissing, torch[0].Location ?? classLocation, symbol.Name, torch[0].Member));
                ok = false;
            }
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var parameterNames = new HashSet<string>(StringComparer.Ordinal);
            foreach (var t in tensors)
            {
                if (!t.Valid) { ok = false; continue; }
                if (!seen.Add(t.Name))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateTensorName, t.NameLocation, t.Name, symbol.Name));
                    ok = false;
                    continue;
                }
                if (!parameterNames.Add(t.Name) || !parameterNames.Add(t.Name + "Grad"))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidTensorName, t.NameLocation, t.Name,
                        "its Step parameters '" + t.Name + "'/'" + t.Name + "Grad' clash with another tensor's"));
                    ok = false;
                }
            }

            // Variants: one per [SketchedOptimizer] on this declaration.
            var variants = new List<VariantModel>();
            var variantNames = new HashSet<string>(StringComparer.Ordinal);
            string metadataName = MetadataName(symbol);
            int attributeCount = attributes.Count;
            foreach (var attr in attributes)
            {
                ct.ThrowIfCancellationRequested();
                var variant = ReadVariant(symbol, attr, tensors, seen, variantNames, metadataName, attributeCount, diagnostics, ct);
                if (variant is not null) variants.Add(variant);
            }

            if (variants.Count == attributeCount && variants.Count > 0) ReportIneffectiveTensorRatios(tensors, variants, symbol.Name, diagnostics);

            // A class with an error gets no generated code at all, not even its valid variants (README, Diagnostics).
            if (diagnostics.Any(d => DiagnosticDescriptors.ById[d.Id].DefaultSeverity == DiagnosticSeverity.Error)) ok = false;

            ClassModel? model = null;
            if (ok && variants.Count > 0)
            {
                string? ns = symbol.ContainingNamespace is { IsGlobalNamespace: false } n ? n.ToDisplayString() : null;
                model = new ClassModel(ns, new EquatableArray<ContainingTypeModel>(containing), Keyword(node), symbol.Name,
                    symbol.ToDisplayString(), new EquatableArray<VariantModel>(variants));
            }
            return new ClassResult(model, new EquatableArray<DiagnosticInfo>(diagnostics));
        }

        /// <summary>Metadata name of TorchSharp's tensor type; <c>[Tensor]</c> members of it (or of <c>Parameter</c>) are stepped through Collins.TorchSharp.</summary>
        internal const string TorchTensorMetadataName = "TorchSharp.torch+Tensor";
        /// <summary>The hidden helper the generated TorchSharp <c>Step</c> calls (package Collins.Generators.TorchSharp).</summary>
        internal const string TorchStepHelperMetadataName = "Collins.TorchSharp.GeneratedTorchStep";

        private static bool IsTorchTensor(ITypeSymbol type, INamedTypeSymbol? torchTensor)
        {
            if (torchTensor is null) return false;
            for (var t = type as INamedTypeSymbol; t is not null; t = t.BaseType)
                if (SymbolEqualityComparer.Default.Equals(t, torchTensor)) return true;
            return false;
        }

        private static TensorDecl ReadTensor(ISymbol member, AttributeData attr, SemanticModel semanticModel, List<DiagnosticInfo> diagnostics,
                                             CancellationToken ct)
        {
            var t = new TensorDecl
            {
                Name = member.Name,
                Member = member.Name,
                MemberIsStatic = member.IsStatic,
                Location = attr.ApplicationSyntaxReference?.GetSyntax(ct).GetLocation() ?? member.Locations.FirstOrDefault(),
            };
            var syntax = attr.ApplicationSyntaxReference?.GetSyntax(ct) as AttributeSyntax;
            foreach (var named in attr.NamedArguments)
            {
                switch (named.Key)
                {
                    case "Name" when named.Value.Value is string s: t.Name = s; break;
                    case "Ratio" when named.Value.Value is int r: t.SpecRatio = r; break;
                    case "Sketching" when named.Value.Value is int k: t.Sketching = k; break;
                }
            }
            var nameLocation = t.NameLocation = NamedArgumentLocation(syntax, "Name") ?? t.Location;
            t.RatioLocation = NamedArgumentLocation(syntax, "Ratio");
            if (!IsIdentifier(t.Name, out string why))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidTensorName, nameLocation, t.Name, why));
                t.Valid = false;
            }
            else if (Reserved.Contains(t.Name) || t.Name.StartsWith("__", StringComparison.Ordinal))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidTensorName, nameLocation, t.Name,
                    "it is a member name of the generated optimizer"));
                t.Valid = false;
            }
            if (t.SpecRatio < 0)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidRatio, NamedArgumentLocation(syntax, "Ratio") ?? t.Location,
                    "Tensor '" + t.Name + "'", t.SpecRatio.ToString(CultureInfo.InvariantCulture)));
                t.Valid = false;
            }
            if (t.Sketching < 0 || t.Sketching > 2) t.Valid = false; // undefined enum value: the compiler reports nothing, we generate nothing

            // The member must be a float[] (the Step parameters are spans of float); an unresolved type is the compiler's error.
            var declaration = member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(ct);
            var type = member is IFieldSymbol field ? field.Type : ((IPropertySymbol)member).Type;
            bool isFloatArray = type is IArrayTypeSymbol { Rank: 1, ElementType.SpecialType: SpecialType.System_Single };
            t.IsTorchMember = !isFloatArray && IsTorchTensor(type, semanticModel.Compilation.GetTypeByMetadataName(TorchTensorMetadataName));
            if (!isFloatArray && !t.IsTorchMember)
            {
                if (type.TypeKind != TypeKind.Error)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.UnsupportedTensorType,
                        MemberTypeSyntax(declaration)?.GetLocation() ?? member.Locations.FirstOrDefault(), member.Name,
                        type.ToDisplayString(SymbolDisplayFormat.CSharpShortErrorMessageFormat)));
                t.Valid = false;
            }
            else if (member is IPropertySymbol { GetMethod: null } property)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.WriteOnlyTensorProperty,
                    property.Locations.FirstOrDefault(), member.Name));
                t.Valid = false;
            }

            // Shape: the params int[] constructor argument.
            var dims = new List<int>();
            string? shapeError = null;
            Location? shapeLocation = t.Location;
            if (attr.ConstructorArguments.Length != 1 || attr.ConstructorArguments[0].Kind != TypedConstantKind.Array)
                shapeError = "the shape is not a list of constants";
            else
            {
                var values = attr.ConstructorArguments[0].Values;
                if (values.IsDefaultOrEmpty) shapeError = "no dimensions";
                else
                {
                    for (int i = 0; i < values.Length; i++)
                    {
                        var v = values[i];
                        if (v.Kind == TypedConstantKind.Error || v.Value is not int d) shapeError = "a dimension is not a constant";
                        else if (d <= 0) shapeError = "dimension " + d.ToString(CultureInfo.InvariantCulture);
                        else { dims.Add(d); continue; }
                        shapeLocation = PositionalArgumentLocation(syntax, i, values.Length) ?? t.Location;
                        break;
                    }
                }
            }
            if (shapeError is not null)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidDimension, shapeLocation, t.Name, shapeError));
                t.Valid = false;
                return t;
            }
            t.Shape = dims.ToArray();
            long length = 1;
            foreach (int d in dims)
            {
                length *= d;
                if (length > HashDerivation.MaxTensorLength)
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TensorTooLarge, t.Location, t.Name,
                        TotalLength(dims), HashDerivation.MaxTensorLength.ToString(CultureInfo.InvariantCulture)));
                    t.Valid = false;
                    return t;
                }
            }
            t.Length = length;

            // An initialiser that allocates a constant number of elements must allocate exactly the shape's.
            if (isFloatArray && InitializerValue(declaration) is { } initializer
                && ConstantArrayLength(initializer, semanticModel, ct) is long allocated && allocated != length)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InitializerLengthMismatch, initializer.GetLocation(), t.Name,
                    string.Join(", ", dims.Select(d => d.ToString(CultureInfo.InvariantCulture))), length.ToString(CultureInfo.InvariantCulture),
                    allocated.ToString(CultureInfo.InvariantCulture)));
                t.Valid = false;
            }
            return t;
        }

        /// <summary>The declared type of a field (its declarator's declaration) or property.</summary>
        private static TypeSyntax? MemberTypeSyntax(SyntaxNode? declaration) => declaration switch
        {
            VariableDeclaratorSyntax { Parent: VariableDeclarationSyntax d } => d.Type,
            PropertyDeclarationSyntax p => p.Type,
            _ => null,
        };

        /// <summary>The initialiser's value (<c>= value</c>) of a field declarator or an auto-property, if any.</summary>
        private static ExpressionSyntax? InitializerValue(SyntaxNode? declaration) => declaration switch
        {
            VariableDeclaratorSyntax v => v.Initializer?.Value,
            PropertyDeclarationSyntax p => p.Initializer?.Value,
            _ => null,
        };

        /// <summary>
        /// The number of elements an array creation allocates when it is known at compile time: <c>new float[n]</c> with a
        /// constant n (any constant expression), <c>new float[] { … }</c> and <c>new[] { … }</c>. Null for anything else
        /// (a non-constant size, a collection expression, <c>null!</c>, a method call, …), which is not diagnosed.
        /// </summary>
        private static long? ConstantArrayLength(ExpressionSyntax expression, SemanticModel semanticModel, CancellationToken ct)
        {
            while (true)
            {
                if (expression is ParenthesizedExpressionSyntax p) expression = p.Expression;
                else if (expression is PostfixUnaryExpressionSyntax { RawKind: (int)SyntaxKind.SuppressNullableWarningExpression } s) expression = s.Operand;
                else break;
            }
            switch (expression)
            {
                case ImplicitArrayCreationExpressionSyntax implicitArray:
                    return implicitArray.Initializer.Expressions.Count;
                case ArrayCreationExpressionSyntax array when array.Type.RankSpecifiers.Count == 1 && array.Type.RankSpecifiers[0].Sizes.Count == 1:
                    var size = array.Type.RankSpecifiers[0].Sizes[0];
                    if (size is OmittedArraySizeExpressionSyntax) return array.Initializer?.Expressions.Count;
                    var model = semanticModel.SyntaxTree == size.SyntaxTree ? semanticModel : semanticModel.Compilation.GetSemanticModel(size.SyntaxTree);
                    var constant = model.GetConstantValue(size, ct);
                    return constant.HasValue ? constant.Value switch
                    {
                        int i => i,
                        long l => l,
                        uint u => u,
                        ulong ul when ul <= long.MaxValue => (long)ul,
                        short sh => sh,
                        ushort us => us,
                        byte b => b,
                        sbyte sb => sb,
                        char c => c,
                        _ => null,
                    } : null;
                default:
                    return null;
            }
        }

        private static string TotalLength(List<int> dims)
        {
            System.Numerics.BigInteger n = 1;
            foreach (int d in dims) n *= d;
            return n.ToString(CultureInfo.InvariantCulture);
        }

        private static VariantModel? ReadVariant(INamedTypeSymbol symbol, AttributeData attr, List<TensorDecl> tensors, HashSet<string> tensorNames,
                                                 HashSet<string> variantNames, string metadataName, int attributeCount,
                                                 List<DiagnosticInfo> diagnostics, CancellationToken ct)
        {
            var syntax = attr.ApplicationSyntaxReference?.GetSyntax(ct) as AttributeSyntax;
            var location = syntax?.GetLocation() ?? symbol.Locations.FirstOrDefault();
            Location? At(string argument) => NamedArgumentLocation(syntax, argument) ?? location;
            string name = "Optimizer";
            // The attribute's defaults (SettingsRules, linked from the runtime); layout 0 = Rotation, second moment 0 = Sum.
            int ratio = SettingsRules.Ratio, layout = 0, secondMoment = 0, denseThreshold = SettingsRules.DenseThreshold;
            double beta1 = SettingsRules.Beta1, beta2 = SettingsRules.Beta2, epsilon = SettingsRules.Epsilon, weightDecay = SettingsRules.WeightDecay;
            long seed = SettingsRules.Seed;
            double updateClipping = SettingsRules.UpdateClipping, beta2Schedule = SettingsRules.Beta2Schedule;
            int firstMoment = SettingsRules.SketchStorage, quantizationBlock = SettingsRules.QuantizationBlock;
            bool stochasticRounding = SettingsRules.StochasticRounding;
            double maxGradientNorm = SettingsRules.MaxGradientNorm;
            bool valid = true;
            foreach (var named in attr.NamedArguments)
            {
                object? v = named.Value.Value;
                switch (named.Key)
                {
                    case "Name": name = v as string ?? ""; break;
                    case "Ratio" when v is int i: ratio = i; break;
                    case "Beta1": beta1 = ToDouble(v); break;
                    case "Beta2": beta2 = ToDouble(v); break;
                    case "Epsilon": epsilon = ToDouble(v); break;
                    case "WeightDecay": weightDecay = ToDouble(v); break;
                    case "Layout" when v is int i: layout = i; break;
                    case "SecondMoment" when v is int i: secondMoment = i; break;
                    case "Seed": seed = v is long l ? l : v is int si ? si : 0; break;
                    case "DenseThreshold" when v is int i: denseThreshold = i; break;
                    case "UpdateClipping": updateClipping = ToDouble(v); break;
                    case "Beta2Schedule": beta2Schedule = ToDouble(v); break;
                    case "FirstMoment" when v is int i: firstMoment = i; break;
                    case "QuantizationBlock" when v is int i: quantizationBlock = i; break;
                    case "StochasticRounding" when v is bool b: stochasticRounding = b; break;
                    case "MaxGradientNorm": maxGradientNorm = ToDouble(v); break;
                }
            }
            string display = name;
            if (!IsIdentifier(name, out string why))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidVariantName, At("Name"), name, why));
                valid = false;
            }
            else if (name == symbol.Name)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidVariantName, At("Name"), name, "it is the name of the model class"));
                valid = false;
            }
            else if (tensors.Any(t => t.Name == name))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidVariantName, At("Name"), name, "a tensor has the same name"));
                valid = false;
            }
            else if (OptimizerMembers.Contains(name) || name.StartsWith("__", StringComparison.Ordinal))
            {
                // The optimizer type would declare a member named like itself (CS0542).
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidVariantName, At("Name"), name,
                    "the generated optimizer has a member of that name"));
                valid = false;
            }
            else if (symbol.GetMembers(name).Any(m => !m.IsImplicitlyDeclared))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidVariantName, At("Name"), name,
                    "the class already has a member of that name"));
                valid = false;
            }
            else if (!variantNames.Add(name))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.DuplicateVariantName, At("Name"), symbol.Name, name));
                valid = false;
            }
            if (!SettingsRules.RatioIsValid(ratio))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidRatio, At("Ratio"), "Optimizer '" + display + "'", ratio.ToString(CultureInfo.InvariantCulture)));
                valid = false;
            }
            if (!SettingsRules.BetaIsValid(beta1))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidBeta, At("Beta1"), display, "Beta1", Num(beta1)));
                valid = false;
            }
            if (!SettingsRules.BetaIsValid(beta2))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidBeta, At("Beta2"), display, "Beta2", Num(beta2)));
                valid = false;
            }
            if (!SettingsRules.EpsilonIsValid(epsilon))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidEpsilon, At("Epsilon"), display, Num(epsilon)));
                valid = false;
            }
            if (!SettingsRules.WeightDecayIsValid(weightDecay))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidWeightDecay, At("WeightDecay"), display, Num(weightDecay)));
                valid = false;
            }
            if (!SettingsRules.DenseThresholdIsValid(denseThreshold))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidDenseThreshold, At("DenseThreshold"), display, denseThreshold.ToString(CultureInfo.InvariantCulture)));
                valid = false;
            }
            if (!SettingsRules.UpdateClippingIsValid(updateClipping))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidUpdateClipping, At("UpdateClipping"), display, Num(updateClipping),
                    "it must be finite and >= 0 (0: off; Adafactor uses 1)"));
                valid = false;
            }
            else if (!SettingsRules.UpdateClippingApplies(updateClipping, secondMoment))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidUpdateClipping, At("UpdateClipping"), display, Num(updateClipping),
                    "update clipping applies to SecondMoment = Factored only: set SecondMoment = SecondMomentEstimate.Factored (with Beta1 = 0), or remove UpdateClipping"));
                valid = false;
            }
            if (!SettingsRules.Beta2ScheduleIsValid(beta2Schedule))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidBeta2Schedule, At("Beta2Schedule"), display, Num(beta2Schedule),
                    "it must be 0 (off) or in (0, 1] (Adafactor uses 0.8)"));
                valid = false;
            }
            else if (!SettingsRules.Beta2ScheduleApplies(beta2Schedule, secondMoment))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidBeta2Schedule, At("Beta2Schedule"), display, Num(beta2Schedule),
                    "the β2 schedule applies to SecondMoment = Factored only: set SecondMoment = SecondMomentEstimate.Factored (with Beta1 = 0), or remove Beta2Schedule"));
                valid = false;
            }
            if (!SettingsRules.MaxGradientNormIsValid(maxGradientNorm))
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidMaxGradientNorm, At("MaxGradientNorm"), display, Num(maxGradientNorm)));
                valid = false;
            }
            if (layout < 0 || layout > 1 || !SettingsRules.SecondMomentIsDefined(secondMoment) || !SettingsRules.FirstMomentIsDefined(firstMoment))
                valid = false; // undefined enum values
            else
            {
                if (!SettingsRules.FactoredAllowsBeta1(secondMoment, beta1, firstMoment))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.FactoredNeedsBeta1Zero, At("Beta1"), display, Num(beta1)));
                    valid = false;
                }
                string storageName = SettingsRules.FirstMomentName(firstMoment);
                // Checked for every storage: OptimizerSettings.Validate (which the generated constructor runs) refuses an invalid
                // block whatever FirstMoment is, so accepting it here would compile an optimizer that throws when it is created.
                if (!SettingsRules.QuantizationBlockIsValid(quantizationBlock))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidQuantizedFirstMoment, At("QuantizationBlock"), display, storageName,
                        "QuantizationBlock = " + quantizationBlock.ToString(CultureInfo.InvariantCulture) + " must be a power of two from 8 to 65536 (default 128)"
                        + (firstMoment == SettingsRules.SketchStorage ? ", whatever FirstMoment is (the optimizer's settings refuse it when it is created): remove QuantizationBlock" : "")));
                    valid = false;
                }
                if (!SettingsRules.QuantizedFirstMomentApplies(firstMoment, secondMoment, beta1))
                {
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidQuantizedFirstMoment, At("FirstMoment"), display, storageName,
                        secondMoment != SettingsRules.FactoredEstimate
                            ? "a quantised first moment applies to SecondMoment = Factored only: set SecondMoment = SecondMomentEstimate.Factored, or remove FirstMoment"
                            : "with Beta1 = 0 there is no first moment to store: set Beta1 > 0 (e.g. 0.9), or remove FirstMoment"));
                    valid = false;
                }
            }
            if (!valid) return null;

            var models = new List<TensorModel>();
            foreach (var t in tensors)
            {
                if (!t.Valid) return null;
                var model = Plan(t, name, ratio, beta1, layout, secondMoment, firstMoment, quantizationBlock, seed, denseThreshold, location, diagnostics);
                if (model is null) valid = false;
                else models.Add(model);
            }
            if (!valid) return null;
            ReportIneffectiveSettings(display, At, models, layout, secondMoment, updateClipping, beta2Schedule, firstMoment, quantizationBlock,
                stochasticRounding, denseThreshold, diagnostics);
            string hint = Sanitize(metadataName) + (attributeCount > 1 ? "." + name : "") + ".g.cs";
            return new VariantModel(name, hint, ratio, beta1, beta2, epsilon, weightDecay, layout, secondMoment, seed, denseThreshold,
                new EquatableArray<TensorModel>(models), updateClipping, beta2Schedule, firstMoment, quantizationBlock, stochasticRounding, maxGradientNorm);
        }

        /// <summary>
        /// Warnings (COL032, COL033, COL034) for settings of a valid variant that are written with a value other than their default
        /// and change nothing in its step or state, each at its named argument: a setting left at its default, or written with the
        /// default value, never warns. The runtime's <c>OptimizerSettings</c> accepts the same combinations and ignores them (its
        /// XML docs say when).
        /// </summary>
        private static void ReportIneffectiveSettings(string display, Func<string, Location?> at, List<TensorModel> models, int layout, int secondMoment,
                                                      double updateClipping, double beta2Schedule, int firstMoment, int quantizationBlock,
                                                      bool stochasticRounding, int denseThreshold, List<DiagnosticInfo> diagnostics)
        {
            string threshold = denseThreshold.ToString(CultureInfo.InvariantCulture);
            string allDense = "every tensor stays dense: fewer entries than DenseThreshold = " + threshold + ", an effective Ratio of 1, or Sketching = Dense";
            const string FactorFix = "lower DenseThreshold (0 factors every tensor) or mark a tensor Sketching = TensorSketching.Sketched, or remove ";

            // COL033: the factored estimate's own settings when no tensor ends up factored (every tensor dense: dense tensors
            // keep AdamW's moments, are not clipped, keep the constant β2 and an fp32 m). Without Factored these are errors (COL027,
            // COL028, COL030), reported before planning.
            if (secondMoment == SettingsRules.FactoredEstimate && !models.Any(m => m.IsFactored))
            {
                void NoFactoredTensor(string argument, string written)
                    => diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.FactoredSettingWithoutFactoredTensor, at(argument), display, written, threshold,
                        FactorFix + argument));
                if (updateClipping != SettingsRules.UpdateClipping) NoFactoredTensor("UpdateClipping", "UpdateClipping = " + Num(updateClipping));
                if (beta2Schedule != SettingsRules.Beta2Schedule) NoFactoredTensor("Beta2Schedule", "Beta2Schedule = " + Num(beta2Schedule));
                if (firstMoment != SettingsRules.SketchStorage) NoFactoredTensor("FirstMoment", "FirstMoment = " + SettingsRules.FirstMomentName(firstMoment));
            }

            // COL032: the quantiser's settings when no tensor keeps a quantised first moment: FirstMoment is the Count-Sketch, or it
            // is quantised but every tensor is dense (COL033 above then names FirstMoment itself).
            if (!models.Any(m => m.QuantizedBlocks > 0))
            {
                bool sketch = firstMoment == SettingsRules.SketchStorage;
                string reason = sketch
                    ? "FirstMoment is Sketch, the default"
                    : allDense;
                void NotQuantized(string argument, string written)
                    => diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.QuantizationSettingWithoutQuantizedMoment, at(argument), display, written, reason,
                        sketch
                            ? "set FirstMoment = FirstMomentStorage.Quantized8 or Quantized4 (with SecondMoment = Factored and Beta1 > 0), or remove " + argument
                            : FactorFix + argument));
                if (stochasticRounding != SettingsRules.StochasticRounding) NotQuantized("StochasticRounding", "StochasticRounding = true");
                if (quantizationBlock != SettingsRules.QuantizationBlock)
                    NotQuantized("QuantizationBlock", "QuantizationBlock = " + quantizationBlock.ToString(CultureInfo.InvariantCulture));
            }

            // COL034: the hash layout when no tensor is hashed: under Factored each tensor is factored or dense, and otherwise
            // every tensor may be dense.
            if (layout != 0 && !models.Any(m => !m.IsDense && !m.IsFactored))
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.LayoutWithoutHashedTensor, at("Layout"), display, "Universal",
                    secondMoment == SettingsRules.FactoredEstimate
                        ? "under SecondMoment = Factored each tensor is factored or dense"
                        : allDense));
        }

        /// <summary>
        /// COL035: a tensor's <c>Ratio = n</c> (n ≥ 2) when every optimizer of the class factors it and would factor it with the
        /// inherited ratio too: a factored tensor keeps R + C floats of v whatever its ratio (the ratio only decides dense or not, and
        /// Ratio = 1, which keeps a tensor dense, has an effect). Only when every variant is valid (otherwise nothing is generated).
        /// </summary>
        private static void ReportIneffectiveTensorRatios(List<TensorDecl> tensors, List<VariantModel> variants, string className,
                                                          List<DiagnosticInfo> diagnostics)
        {
            for (int i = 0; i < tensors.Count; i++)
            {
                var t = tensors[i];
                if (t.RatioLocation is null || t.SpecRatio < 2) continue;
                bool ignored = variants.All(v => v.SecondMoment == SettingsRules.FactoredEstimate && v.Tensors.Count == tensors.Count
                    && v.Tensors[i].IsFactored && !SettingsRules.IsDense(v.Ratio, t.Sketching, t.Length, v.DenseThreshold));
                if (ignored)
                    diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TensorRatioWithoutEffect, t.RatioLocation, t.Name,
                        t.SpecRatio.ToString(CultureInfo.InvariantCulture), className));
            }
        }

        /// <summary>Mirrors <c>TensorPlan</c>: dense rule, effective ratio, buckets, rows, hash constants.</summary>
        /// <summary>
        /// Most rows a Rotation tensor may have: the emitter unrolls one statement per row in each kernel, so rows (≤ ratio)
        /// bound the size of the generated code. Beyond it COL017 is reported instead of emitting huge code.
        /// </summary>
        internal const int MaxUnrolledRows = 1024;

        private static TensorModel? Plan(TensorDecl t, string variant, int settingsRatio, double beta1, int layout, int secondMoment, int firstMoment, int quantizationBlock,
                                        long seed, int denseThreshold, Location? variantLocation, List<DiagnosticInfo> diagnostics)
        {
            int length = (int)t.Length;
            int ratio = t.SpecRatio == 0 ? settingsRatio : t.SpecRatio;
            bool dense = SettingsRules.IsDense(ratio, t.Sketching, length, denseThreshold);
            int effectiveRatio = dense ? 1 : ratio;
            int buckets = dense ? length : HashDerivation.Buckets(length, ratio);
            int rows = dense ? 1 : HashDerivation.Rows(length, buckets);
            bool factored = !dense && secondMoment == SettingsRules.FactoredEstimate;
            int factorColumns = factored ? SettingsRules.FactorColumns(t.Shape) : 0;
            bool quantized = SettingsRules.TensorIsQuantized(factored, beta1, firstMoment);
            var clashes = dense ? DenseClassMembers : quantized ? QuantizedClassMembers : factored ? FactoredClassMembers
                        : layout == 0 ? RotationClassMembers : UniversalClassMembers;
            if (Array.IndexOf(TensorClassMembers, t.Name) >= 0 || Array.IndexOf(clashes, t.Name) >= 0)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.InvalidTensorName, t.NameLocation ?? variantLocation, t.Name,
                    "its generated class in optimizer '" + variant + "' has a member of that name"
                    + (dense ? "" : factored ? " (factored second moment)" : layout == 0 ? " (Rotation layout)" : " (Universal layout)")));
                return null;
            }
            if (!dense && !factored && layout == 0 && rows > MaxUnrolledRows)
            {
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.TooManyRows, t.Location ?? variantLocation, t.Name,
                    rows.ToString(CultureInfo.InvariantCulture), ratio.ToString(CultureInfo.InvariantCulture), variant,
                    MaxUnrolledRows.ToString(CultureInfo.InvariantCulture)));
                return null;
            }
            int[] rotations = Array.Empty<int>(), signs = Array.Empty<int>();
            uint a = 0, b = 0, sa = 0, sb = 0;
            if (!dense && !factored && layout == 0)
            {
                rotations = new int[rows];
                signs = new int[rows];
                HashDerivation.Rotation(seed, t.Name, rows, buckets, rotations, signs);
            }
            if (!dense && !factored && layout == 1) HashDerivation.Universal(seed, t.Name, out a, out b, out sa, out sb);
            if (!dense && !factored && ratio > length)
                diagnostics.Add(DiagnosticInfo.Create(DiagnosticDescriptors.RatioExceedsLength, t.Location ?? variantLocation, t.Name,
                    length.ToString(CultureInfo.InvariantCulture), ratio.ToString(CultureInfo.InvariantCulture), variant));
            return new TensorModel(t.Name, t.Member, t.MemberIsStatic, t.IsTorchMember, new EquatableArray<int>(t.Shape), t.SpecRatio, t.Sketching, length, dense, effectiveRatio,
                buckets, rows, new EquatableArray<int>(rotations), new EquatableArray<int>(signs), a, b, sa, sb,
                factored, factored ? length / factorColumns : 0, factorColumns,
                quantized ? (int)SettingsRules.QuantizedBlocks(length, quantizationBlock) : 0,
                quantized ? (int)SettingsRules.QuantizedCodeBytes(firstMoment, length, quantizationBlock) : 0);
        }

        /// <summary>The location of <c>Name = value</c> in an attribute application, or null when it is not written there.</summary>
        private static Location? NamedArgumentLocation(AttributeSyntax? syntax, string name)
        {
            if (syntax?.ArgumentList is null) return null;
            foreach (var argument in syntax.ArgumentList.Arguments)
                if (argument.NameEquals is not null && argument.NameEquals.Name.Identifier.ValueText == name) return argument.GetLocation();
            return null;
        }

        /// <summary>The location of the positional argument holding element <paramref name="index"/> of a params array (null when not expanded).</summary>
        private static Location? PositionalArgumentLocation(AttributeSyntax? syntax, int index, int count)
        {
            if (syntax?.ArgumentList is null) return null;
            var positional = syntax.ArgumentList.Arguments.Where(a => a.NameEquals is null && a.NameColon is null).ToList();
            return positional.Count == count && index < positional.Count ? positional[index].GetLocation() : null;
        }

        private static double ToDouble(object? v) => v switch
        {
            double d => d,
            float f => f,
            int i => i,
            long l => l,
            _ => double.NaN,
        };

        private static string Num(double d) => d.ToString("R", CultureInfo.InvariantCulture);

        private static bool IsIdentifier(string name, out string why)
        {
            why = "";
            if (string.IsNullOrEmpty(name)) { why = "it is empty"; return false; }
            if (!SyntaxFacts.IsValidIdentifier(name)) { why = "it is not a valid C# identifier"; return false; }
            if (SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None) { why = "it is a C# keyword"; return false; }
            return true;
        }

        private static string Keyword(TypeDeclarationSyntax node) => node switch
        {
            RecordDeclarationSyntax r when r.ClassOrStructKeyword.IsKind(SyntaxKind.StructKeyword) => "record struct",
            RecordDeclarationSyntax => "record",
            StructDeclarationSyntax => "struct",
            InterfaceDeclarationSyntax => "interface",
            _ => "class",
        };

        private static string TypeParameters(TypeDeclarationSyntax node)
            => node.TypeParameterList is null || node.TypeParameterList.Parameters.Count == 0
                ? ""
                : "<" + string.Join(", ", node.TypeParameterList.Parameters.Select(p => p.Identifier.ValueText)) + ">";

        private static string MetadataName(INamedTypeSymbol symbol)
        {
            var parts = new List<string>();
            for (ISymbol? s = symbol; s is INamedTypeSymbol t; s = t.ContainingSymbol) parts.Insert(0, t.MetadataName);
            string types = string.Join("+", parts);
            var ns = symbol.ContainingNamespace;
            return ns is null || ns.IsGlobalNamespace ? types : ns.ToDisplayString() + "." + types;
        }

        private static string Sanitize(string s)
        {
            var sb = new StringBuilder(s.Length);
            foreach (char c in s) sb.Append(char.IsLetterOrDigit(c) || c == '.' || c == '_' || c == '+' ? c : '_');
            return sb.ToString();
        }
    }
}
