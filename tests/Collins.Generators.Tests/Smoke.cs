using System.Reflection;
using Collins.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Collins.Generators.Tests;

/// <summary>The whole chain on the smallest model: generate, compile to an assembly, load it, find the optimizer type.</summary>
public class BuildSmoke
{
    [Fact]
    public void A_trivial_model_generates_compiles_and_has_its_optimizer_type()
    {
        var run = GeneratorDriverHelper.Run("""
            using Collins;
            namespace Smoke;

            [SketchedOptimizer(Ratio = 4)]
            public partial class Tiny
            {
                [Tensor(8)] public float[] W = new float[8];
            }
            """);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Equal(new[] { "Smoke.Tiny.g.cs" }, run.Generator.GeneratedSources.Select(s => s.HintName));

        using var image = new MemoryStream();
        var emitted = run.Output.Emit(image);
        Assert.True(emitted.Success, string.Join("\n", emitted.Diagnostics.Where(d => d.Severity == DiagnosticSeverity.Error)));

        var assembly = Assembly.Load(image.ToArray());
        var optimizer = assembly.GetType("Smoke.Tiny+Optimizer");
        Assert.NotNull(optimizer);
        Assert.True(optimizer!.IsSubclassOf(typeof(Collins.SketchedOptimizerBase)));
        Assert.NotNull(optimizer.GetConstructor(Type.EmptyTypes));
        // Step(learningRate, W, WGrad) for CPU spans.
        Assert.Contains(optimizer.GetMethods(), m => m.Name == "Step" && m.GetParameters().Select(p => p.Name).SequenceEqual(new[] { "learningRate", "W", "WGrad" })
                                                     && m.GetParameters()[1].ParameterType == typeof(Span<float>));
    }
}
