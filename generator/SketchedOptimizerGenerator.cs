using System;
using System.Collections.Generic;
using System.Linq;
using System.Threading;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Collins.Generators
{
    /// <summary>
    /// Emits a Count-Sketch Adam optimizer, specialised to constant tensor shapes, for every class
    /// annotated with <c>[Collins.SketchedOptimizer]</c>.
    /// Pipeline: ForAttributeWithMetadataName → <see cref="ModelBuilder.Build"/> (equatable
    /// <see cref="ClassResult"/>) → diagnostics output and source output, registered separately; a second
    /// ForAttributeWithMetadataName on <c>[Collins.Tensor]</c> warns about tensors outside an annotated class (COL019).
    /// </summary>
    [Generator(LanguageNames.CSharp)]
    public sealed class SketchedOptimizerGenerator : IIncrementalGenerator
    {
        public const string AttributeMetadataName = "Collins.SketchedOptimizerAttribute";
        public const string TensorAttributeMetadataName = "Collins.TensorAttribute";

        // Null in the shipped generator. Tests pass one through the internal constructor: given "transform:{class name}" or
        // "emit:{class name}", it returns an exception to throw at that stage, to check that a failure becomes one COL999
        // diagnostic and never the compiler's CS8785.
        private readonly Func<string, Exception?>? _faultInjection;

        /// <summary>The generator as the compiler creates it.</summary>
        public SketchedOptimizerGenerator() { }

        /// <summary>Tests only: a generator that throws the exception <paramref name="faultInjection"/> returns for a stage.</summary>
        internal SketchedOptimizerGenerator(Func<string, Exception?>? faultInjection) => _faultInjection = faultInjection;

        public void Initialize(IncrementalGeneratorInitializationContext context)
        {
            var faultInjection = _faultInjection;
            var results = context.SyntaxProvider
                .ForAttributeWithMetadataName(
                    AttributeMetadataName,
                    predicate: static (node, _) => node is ClassDeclarationSyntax || node is RecordDeclarationSyntax,
                    transform: (ctx, ct) => SafeBuild(ctx, faultInjection, ct))
                .WithTrackingName(TrackingNames.Transform);

            var diagnostics = results
                .Select(static (r, _) => r.Diagnostics)
                .WithTrackingName(TrackingNames.Diagnostics);

            var models = results
                .Where(static r => r.Model is not null)
                .WithTrackingName(TrackingNames.WithModel)
                .Select(static (r, _) => r.Model!)
                .WithTrackingName(TrackingNames.Models);

            // [Tensor] on a member of a type without [SketchedOptimizer]: a warning (COL019), from a second pipeline whose
            // output per member is an equatable DiagnosticInfo (null, and filtered out, for every well-placed [Tensor]).
            var orphanTensors = context.SyntaxProvider
                .ForAttributeWithMetadataName(
                    TensorAttributeMetadataName,
                    predicate: static (node, _) => node is VariableDeclaratorSyntax || node is PropertyDeclarationSyntax,
                    transform: static (ctx, ct) => SafeOrphanTensor(ctx, ct))
                .Where(static d => d is not null)
                .Select(static (d, _) => d!)
                .WithTrackingName(TrackingNames.OrphanTensors);

            context.RegisterSourceOutput(orphanTensors, static (spc, d) => spc.ReportDiagnostic(d.ToDiagnostic()));

            context.RegisterSourceOutput(diagnostics, static (spc, list) =>
            {
                foreach (var d in list) spc.ReportDiagnostic(d.ToDiagnostic());
            });

            context.RegisterSourceOutput(models, (spc, model) =>
            {
                // Render everything first: on failure nothing of this class is added (no broken code).
                var files = new List<(string Hint, string Text)>();
                try
                {
                    if (faultInjection?.Invoke("emit:" + model.ClassName) is { } fault) throw fault;
                    foreach (var variant in model.Variants)
                        files.Add((variant.HintName, Emitter.Emit(model, variant)));
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    spc.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.InternalError, Location.None,
                        $"emitting '{model.DisplayName}': {ex.GetType().Name}: {ex.Message}"));
                    return;
                }
                try
                {
                    // AddSource throws on a hint name already added, e.g. for two same-named classes (already a CS0101 error).
                    foreach (var (hint, text) in files) spc.AddSource(hint, text);
                }
                catch (ArgumentException ex)
                {
                    spc.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.InternalError, Location.None,
                        $"adding the source of '{model.DisplayName}': {ex.GetType().Name}: {ex.Message}"));
                }
            });
        }

        /// <summary>COL019 for a [Tensor] member whose containing type has no [SketchedOptimizer] (on any of its declarations); else null.</summary>
        private static DiagnosticInfo? SafeOrphanTensor(GeneratorAttributeSyntaxContext ctx, CancellationToken ct)
        {
            try
            {
                var member = ctx.TargetSymbol;
                var owner = member.ContainingType;
                if (owner is null || owner.GetAttributes().Any(a => a.AttributeClass?.ToDisplayString() == AttributeMetadataName)) return null;
                // `[Tensor(8)] public float[] A, B;` is one attribute on two declarators: report it once.
                if (ctx.TargetNode is VariableDeclaratorSyntax { Parent: VariableDeclarationSyntax declaration } declarator
                    && declaration.Variables[0] != declarator)
                    return null;
                var location = ctx.Attributes.FirstOrDefault()?.ApplicationSyntaxReference?.GetSyntax(ct).GetLocation() ?? ctx.TargetNode.GetLocation();
                return DiagnosticInfo.Create(DiagnosticDescriptors.TensorOutsideOptimizer, location, member.Name, owner.Name);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                return DiagnosticInfo.Create(DiagnosticDescriptors.InternalError, ctx.TargetNode.GetLocation(),
                    $"checking [Tensor] on '{ctx.TargetSymbol.Name}': {ex.GetType().Name}: {ex.Message}");
            }
        }

        private static ClassResult SafeBuild(GeneratorAttributeSyntaxContext ctx, Func<string, Exception?>? faultInjection, CancellationToken ct)
        {
            try
            {
                if (faultInjection?.Invoke("transform:" + ctx.TargetSymbol.Name) is { } fault) throw fault;
                return ModelBuilder.Build(ctx, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                var info = DiagnosticInfo.Create(DiagnosticDescriptors.InternalError, ctx.TargetNode.GetLocation(),
                    $"{ex.GetType().Name}: {ex.Message}");
                return new ClassResult(null, new EquatableArray<DiagnosticInfo>(new[] { info }));
            }
        }
    }
}
