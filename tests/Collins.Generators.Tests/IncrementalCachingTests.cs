using System.Collections;
using System.Collections.Immutable;
using System.Reflection;
using Collins.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;

namespace Collins.Generators.Tests;

/// <summary>
/// The pipeline caches: edits that do not touch a class leave its steps Cached or Unchanged, and its models hold no
/// Roslyn object (Compilation, ISymbol, SyntaxNode, Location, …) that would pin a compilation or defeat equality.
/// </summary>
public class IncrementalCachingTests
{
    private const string ClassA = """
        using Collins;
        namespace App;

        // Model A.
        [SketchedOptimizer(Ratio = 8)]
        public partial class A
        {
            [Tensor(64, 64)] public float[] W = new float[4096];
            [Tensor(64)] public float[] B = new float[64];
        }
        """;

    private const string ClassB = """
        using Collins;
        namespace App;

        [SketchedOptimizer(Ratio = 16, Layout = SketchLayout.Universal)]
        public partial class B
        {
            [Tensor(128, 64)] public float[] W = new float[8192];
        }
        """;

    // [Tensor] without [SketchedOptimizer]: the second pipeline's COL019 warning.
    private const string Orphan = """
        using Collins;
        namespace App;

        public class Plain
        {
            [Tensor(8)] public float[] W = new float[8];
        }
        """;

    private static readonly string[] OurSteps = { TrackingNames.Transform, TrackingNames.Diagnostics, TrackingNames.WithModel, TrackingNames.Models, TrackingNames.OrphanTensors };

    [Fact]
    public void Every_tracking_name_constant_names_a_tracked_step()
    {
        var names = typeof(TrackingNames).GetFields().Where(f => f.IsLiteral).Select(f => (string)f.GetRawConstantValue()!).ToList();
        Assert.Equal(names.OrderBy(n => n), OurSteps.OrderBy(n => n));
    }

    private static (GeneratorDriver Driver, CSharpCompilation Compilation) Prime()
    {
        var compilation = GeneratorDriverHelper.CreateCompilation(ClassA, ClassB, Orphan);
        var driver = GeneratorDriverHelper.CreateDriver(trackSteps: true);
        driver = driver.RunGenerators(compilation);
        var first = driver.GetRunResult().Results.Single();
        Assert.Null(first.Exception);
        Assert.Equal(2, first.GeneratedSources.Length);
        Assert.Equal("COL019", Assert.Single(first.Diagnostics).Id);
        foreach (var name in OurSteps) Assert.True(first.TrackedSteps.ContainsKey(name), "step not tracked: " + name);
        return (driver, compilation);
    }

    private static GeneratorRunResult RunAgain(GeneratorDriver driver, Compilation compilation)
    {
        var result = driver.RunGenerators(compilation).GetRunResult().Results.Single();
        Assert.Null(result.Exception);
        return result;
    }

    /// <summary>Reasons of every output of <paramref name="step"/> whose value belongs to class <paramref name="className"/>.</summary>
    private static List<IncrementalStepRunReason> Reasons(GeneratorRunResult result, string step, string className)
    {
        var reasons = result.TrackedSteps[step]
            .SelectMany(s => s.Outputs)
            .Where(o => ClassOf(o.Value) == className)
            .Select(o => o.Reason)
            .ToList();
        Assert.True(reasons.Count > 0, $"no output of {step} for class {className}");
        return reasons;
    }

    private static string? ClassOf(object value) => value switch
    {
        ClassResult r => r.Model?.ClassName,
        ClassModel m => m.ClassName,
        _ => null,
    };

    private static void AssertCachedOrUnchanged(GeneratorRunResult result, string className, params string[] steps)
    {
        foreach (var step in steps)
            foreach (var reason in Reasons(result, step, className))
                Assert.True(reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged,
                    $"{className}: step {step} was {reason}");
    }

    private static IEnumerable<IncrementalStepRunReason> SourceOutputReasons(GeneratorRunResult result)
        => result.TrackedOutputSteps.SelectMany(kv => kv.Value).SelectMany(s => s.Outputs).Select(o => o.Reason);

    [Fact]
    public void Adding_an_unrelated_type_leaves_both_classes_cached()
    {
        var (driver, compilation) = Prime();
        var edited = compilation.AddSyntaxTrees(GeneratorDriverHelper.Parse("namespace App; public class Unrelated { public int X; }", "Unrelated.cs"));
        var result = RunAgain(driver, edited);
        AssertCachedOrUnchanged(result, "A", TrackingNames.Transform, TrackingNames.Models);
        AssertCachedOrUnchanged(result, "B", TrackingNames.Transform, TrackingNames.Models);
        Assert.All(SourceOutputReasons(result), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
    }

    [Fact]
    public void Editing_a_comment_leaves_the_class_unchanged()
    {
        var (driver, compilation) = Prime();
        var oldTree = compilation.SyntaxTrees.Single(t => t.FilePath == "Model0.cs");
        var newTree = oldTree.WithChangedText(SourceText.From(ClassA.Replace("// Model A.", "// Model A: the first model, with a much longer comment."), System.Text.Encoding.UTF8));
        var result = RunAgain(driver, compilation.ReplaceSyntaxTree(oldTree, newTree));
        AssertCachedOrUnchanged(result, "A", TrackingNames.Transform, TrackingNames.Models);
        AssertCachedOrUnchanged(result, "B", TrackingNames.Transform, TrackingNames.Models);
        Assert.All(SourceOutputReasons(result), r => Assert.Equal(IncrementalStepRunReason.Cached, r));
    }

    [Fact]
    public void Editing_another_annotated_class_leaves_the_untouched_class_cached_and_regenerates_only_the_edited_one()
    {
        var (driver, compilation) = Prime();
        var oldTree = compilation.SyntaxTrees.Single(t => t.FilePath == "Model1.cs");
        var newTree = oldTree.WithChangedText(SourceText.From(ClassB.Replace("Ratio = 16", "Ratio = 4"), System.Text.Encoding.UTF8));
        var result = RunAgain(driver, compilation.ReplaceSyntaxTree(oldTree, newTree));

        AssertCachedOrUnchanged(result, "A", TrackingNames.Transform, TrackingNames.Models);
        Assert.Contains(IncrementalStepRunReason.Modified, Reasons(result, TrackingNames.Transform, "B"));
        Assert.Equal(new[] { IncrementalStepRunReason.Modified }, Reasons(result, TrackingNames.Models, "B"));
        // Exactly one source output ran again: B's.
        Assert.Equal(1, SourceOutputReasons(result).Count(r => r == IncrementalStepRunReason.Modified));
        Assert.Contains(", Ratio = 4;", result.GeneratedSources.Single(s => s.HintName == "App.B.g.cs").SourceText.ToString());
    }

    [Fact]
    public void Changing_ratio_regenerates_only_that_class()
    {
        var (driver, compilation) = Prime();
        var oldTree = compilation.SyntaxTrees.Single(t => t.FilePath == "Model0.cs");
        var newTree = oldTree.WithChangedText(SourceText.From(ClassA.Replace("Ratio = 8", "Ratio = 32"), System.Text.Encoding.UTF8));
        var result = RunAgain(driver, compilation.ReplaceSyntaxTree(oldTree, newTree));
        Assert.Equal(new[] { IncrementalStepRunReason.Modified }, Reasons(result, TrackingNames.Models, "A"));
        AssertCachedOrUnchanged(result, "B", TrackingNames.Transform, TrackingNames.Models);
        Assert.Equal(1, SourceOutputReasons(result).Count(r => r == IncrementalStepRunReason.Modified));
    }

    [Fact]
    public void The_orphan_tensor_warning_is_cached_across_other_edits_and_recomputed_when_its_file_changes()
    {
        var (driver, compilation) = Prime();
        var model0 = compilation.SyntaxTrees.Single(t => t.FilePath == "Model0.cs");
        var elsewhere = RunAgain(driver, compilation.ReplaceSyntaxTree(model0,
            model0.WithChangedText(SourceText.From(ClassA.Replace("Ratio = 8", "Ratio = 32"), System.Text.Encoding.UTF8))));
        Assert.All(elsewhere.TrackedSteps[TrackingNames.OrphanTensors].SelectMany(s => s.Outputs),
            o => Assert.True(o.Reason is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged, "orphan step was " + o.Reason));
        Assert.Equal("COL019", Assert.Single(elsewhere.Diagnostics).Id);

        // Moving the member moves the warning: the step's output is modified and the warning is re-reported at its new line.
        var model2 = compilation.SyntaxTrees.Single(t => t.FilePath == "Model2.cs");
        var moved = RunAgain(driver, compilation.ReplaceSyntaxTree(model2,
            model2.WithChangedText(SourceText.From(Orphan.Replace("public class Plain", "\n\npublic class Plain"), System.Text.Encoding.UTF8))));
        Assert.Contains(IncrementalStepRunReason.Modified, moved.TrackedSteps[TrackingNames.OrphanTensors].SelectMany(s => s.Outputs).Select(o => o.Reason));
        Assert.Equal(elsewhere.Diagnostics[0].Location.GetLineSpan().StartLinePosition.Line + 2,
            Assert.Single(moved.Diagnostics).Location.GetLineSpan().StartLinePosition.Line);
    }

    [Fact]
    public void A_change_that_only_moves_a_diagnostic_does_not_regenerate_code()
    {
        // COL013 (warning) on a valid class: code is generated and the warning carries a span. Inserting lines above the
        // class moves the warning (diagnostics re-reported) but the model is equal, so no source output runs again.
        const string source = """
            using Collins;
            namespace App;
            [SketchedOptimizer(Ratio = 16)]
            public partial class C
            {
                [Tensor(3, 4, Sketching = TensorSketching.Sketched)] public float[] W = new float[12];
            }
            """;
        var compilation = GeneratorDriverHelper.CreateCompilation(source);
        var driver = GeneratorDriverHelper.CreateDriver(trackSteps: true).RunGenerators(compilation);
        var first = driver.GetRunResult().Results.Single();
        var before = Assert.Single(first.Diagnostics);

        var oldTree = compilation.SyntaxTrees.Single();
        var newTree = oldTree.WithChangedText(SourceText.From("\n\n// moved\n" + source, System.Text.Encoding.UTF8));
        var result = RunAgain(driver, compilation.ReplaceSyntaxTree(oldTree, newTree));

        var after = Assert.Single(result.Diagnostics);
        Assert.Equal("COL013", after.Id);
        Assert.Equal(before.Location.GetLineSpan().StartLinePosition.Line + 3, after.Location.GetLineSpan().StartLinePosition.Line);
        Assert.Equal(new[] { IncrementalStepRunReason.Modified }, result.TrackedSteps[TrackingNames.Diagnostics].SelectMany(s => s.Outputs).Select(o => o.Reason));
        AssertCachedOrUnchanged(result, "C", TrackingNames.Models);
        // Two source outputs: the diagnostics one ran again, the code one (fed by the Models step) stayed cached.
        var outputs = result.TrackedOutputSteps["SourceOutput"];
        var code = outputs.Single(s => s.Inputs.Any(i => i.Source.Name == TrackingNames.Models));
        var diagnostics = outputs.Single(s => s.Inputs.Any(i => i.Source.Name == TrackingNames.Diagnostics));
        Assert.All(code.Outputs, o => Assert.Equal(IncrementalStepRunReason.Cached, o.Reason));
        Assert.All(diagnostics.Outputs, o => Assert.Equal(IncrementalStepRunReason.Modified, o.Reason));
        Assert.Single(result.GeneratedSources);
    }

    // ------------------------------------------------------------------ no Roslyn objects in the models

    private static readonly Type[] Forbidden =
    {
        typeof(Compilation), typeof(ISymbol), typeof(SyntaxNode), typeof(SyntaxTree), typeof(Location), typeof(SemanticModel),
        typeof(Diagnostic), typeof(AttributeData), typeof(SyntaxReference),
    };

    [Fact]
    public void Tracked_step_outputs_hold_no_compilation_symbol_syntax_or_location()
    {
        // Valid classes, a class with diagnostics, nested types and several variants: every model shape.
        const string withProblems = """
            using Collins;
            namespace App.Deep;
            public partial class Outer
            {
                [SketchedOptimizer(Ratio = 0)]
                [SketchedOptimizer(Name = "Other", Ratio = 8, Beta1 = 0)]
                public partial class D
                {
                    [Tensor(3, 4, Sketching = TensorSketching.Sketched)] public float[] W = new float[12];
                    [Tensor(-1)] public float[] Bad = new float[1];
                }
            }
            """;
        var compilation = GeneratorDriverHelper.CreateCompilation(ClassA, ClassB, withProblems, Orphan);
        var driver = GeneratorDriverHelper.CreateDriver(trackSteps: true).RunGenerators(compilation);
        var result = driver.GetRunResult().Results.Single();
        Assert.NotEmpty(result.Diagnostics);

        int walked = 0;
        foreach (var name in OurSteps)
            foreach (var step in result.TrackedSteps[name])
                foreach (var (value, _) in step.Outputs)
                {
                    AssertNoRoslynObjects(value, name);
                    walked++;
                }
        Assert.True(walked >= 6, "too few step outputs walked: " + walked);
    }

    [Fact]
    public void The_object_graph_walker_finds_a_location_hidden_in_a_collection()
    {
        var tree = GeneratorDriverHelper.Parse("class X { }");
        var leaky = new List<object> { 1, "a", new Dictionary<string, object> { ["x"] = new object[] { tree.GetRoot().GetLocation() } } };
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertNoRoslynObjects(leaky, "test"));
        Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => AssertNoRoslynObjects(new EquatableArray<int>(new[] { 1 }).ToImmutableArray(), "test"));
    }

    /// <summary>Walks every field (public or not) of <paramref name="root"/>, recursing into arrays and collections.</summary>
    internal static void AssertNoRoslynObjects(object? root, string stepName)
    {
        var visited = new HashSet<object>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(object? Value, string Path)>();
        stack.Push((root, stepName));
        while (stack.Count > 0)
        {
            var (value, path) = stack.Pop();
            if (value is null) continue;
            var type = value.GetType();
            if (type.IsPrimitive || type.IsEnum || value is string || value is decimal) continue;
            if (Forbidden.Any(f => f.IsAssignableFrom(type)))
                Assert.Fail($"{path} holds a {type.FullName}");
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(ImmutableArray<>))
                Assert.Fail($"{path} holds a bare {type.Name} (reference equality): use EquatableArray");
            if (!type.IsValueType && !visited.Add(value)) continue;

            if (value is IEnumerable sequence)
            {
                int i = 0;
                foreach (var item in sequence) stack.Push((item, $"{path}[{i++}]"));
                if (type.IsArray) continue;
            }
            for (var t = type; t is not null && t != typeof(object); t = t.BaseType)
                foreach (var field in t.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                {
                    if (field.FieldType.IsPointer || field.FieldType.IsByRefLike) continue;
                    stack.Push((field.GetValue(value), path + "." + field.Name));
                }
        }
    }
}
