using Collins.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;

namespace Collins.Generators.Tests;

/// <summary>Invalid input: the right diagnostics, no source for what is invalid, and never an exception.</summary>
public class GeneratorHarnessTests
{
    private static string[] Ids(IEnumerable<Diagnostic> diagnostics) => diagnostics.Select(d => d.Id).Distinct().OrderBy(x => x).ToArray();

    [Fact]
    public void An_invalid_variant_stops_the_whole_class_from_generating_as_the_README_says()
    {
        var (result, output, diagnostics) = GeneratorHarness.Run("""
            using Collins;
            namespace N;
            [SketchedOptimizer(Name = "Good", Ratio = 8)]
            [SketchedOptimizer(Name = "Bad", Beta1 = 1.5)]
            public partial class M { [Tensor(100, 100)] public float[] W = new float[10000]; }
            """);
        Assert.Equal(new[] { "COL005" }, Ids(diagnostics));
        // "A class with an error gets no generated code": not even the valid variant.
        Assert.Empty(result.Results.Single().GeneratedSources);
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void Several_errors_are_all_reported_and_nothing_is_generated()
    {
        var (result, _, diagnostics) = GeneratorHarness.Run("""
            using Collins;
            [SketchedOptimizer(Ratio = 0, Epsilon = 0, WeightDecay = -1)]
            public class M
            {
                [Tensor(0)] public float[] A = new float[1];
                [Tensor(4, Name = "A")] public float[] B = new float[4];
                [Tensor(4, Name = "class")] public float[] C = new float[4];
            }
            """);
        var ids = Ids(diagnostics);
        foreach (var expected in new[] { "COL001", "COL004", "COL006", "COL007", "COL008", "COL011" })
            Assert.Contains(expected, ids);
        Assert.Empty(result.Results.Single().GeneratedSources);
    }

    [Fact]
    public void No_tensors_is_an_error_without_source()
    {
        var (result, _, diagnostics) = GeneratorHarness.Run("""
            [Collins.SketchedOptimizer] public partial class Empty { public float[] NotATensor = new float[3]; }
            """);
        Assert.Equal(new[] { "COL012" }, Ids(diagnostics));
        Assert.Empty(result.Results.Single().GeneratedSources);
    }

    [Theory]
    [InlineData("[Collins.SketchedOptimizer(Ratio = \"x\")] public partial class M { [Collins.Tensor(5)] public float[] W; }")]
    [InlineData("[Collins.SketchedOptimizer] public partial class M { [Collins.Tensor(\"a\", 2)] public float[] W; }")]
    [InlineData("[Collins.SketchedOptimizer] public partial class M { [Collins.Tensor(N)] public float[] W; static int N = 3; }")]
    [InlineData("[Collins.SketchedOptimizer] public partial class M { [Collins.Tensor(3 public float[] W; ")]
    [InlineData("[Collins.SketchedOptimizer(Layout = (Collins.SketchLayout)7)] public partial class M { [Collins.Tensor(5000)] public float[] W; }")]
    [InlineData("[Collins.SketchedOptimizer] public partial record struct M { [Collins.Tensor(5000)] public float[] W { get; init; } }")]
    [InlineData("partial class O<T> { [Collins.SketchedOptimizer] public partial class M { [Collins.Tensor(5000, Sketching = (Collins.TensorSketching)9)] public float[] W; } }")]
    public void Malformed_input_never_throws_and_never_generates_broken_code(string source)
    {
        var (result, output, diagnostics) = GeneratorHarness.Run(source);
        Assert.Null(result.Results.Single().Exception);
        Assert.DoesNotContain(diagnostics, d => d.Id is "COL999" or "CS8784" or "CS8785");
        var generated = result.Results.Single().GeneratedSources.Select(s => s.SyntaxTree).ToHashSet();
        var errorsInGenerated = output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error && d.Location.SourceTree is { } t && generated.Contains(t));
        Assert.Empty(errorsInGenerated);
    }
}
