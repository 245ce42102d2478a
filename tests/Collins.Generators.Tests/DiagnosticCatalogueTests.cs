using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Collins.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Collins.Generators.Tests;

/// <summary>
/// One test per diagnostic (and per distinct trigger): id, severity, the formatted message and the exact span (marked
/// <c>[|…|]</c> in the source). Invalid input must produce the diagnostic and no code for the invalid optimizer, and the
/// generated code that is produced must compile without errors.
/// </summary>
public class DiagnosticCatalogueTests
{
    private const string Tensors = """
            [Tensor(8, 8)] public float[] W = new float[64];
            [Tensor(8)] public float[] B = new float[8];
        """;

    /// <summary>A model class with the given attribute arguments and body.</summary>
    private static string Model(string attribute = "SketchedOptimizer(Ratio = 4)", string body = Tensors, string declaration = "public partial class M")
        => $$"""
        using Collins;
        namespace App;

        [{{attribute}}]
        {{declaration}}
        {
        {{body}}
        }
        """;

    /// <summary>Runs the generator over <paramref name="markup"/> and checks that it reports exactly the expected diagnostics.</summary>
    private static GeneratorRun AssertDiagnostics(string markup, params (string Id, DiagnosticSeverity Severity, string Message)[] expected)
        => AssertDiagnosticsBeside(Array.Empty<string>(), markup, expected);

    /// <summary>As <see cref="AssertDiagnostics"/>, with more source files in the compilation (the spans are the first file's).</summary>
    private static GeneratorRun AssertDiagnosticsBeside(string[] otherSources, string markup, params (string Id, DiagnosticSeverity Severity, string Message)[] expected)
    {
        var (source, spans) = Markup.Parse(markup);
        Assert.Equal(expected.Length, spans.Count);
        var run = GeneratorDriverHelper.Run(new[] { source }.Concat(otherSources).ToArray());
        Assert.Null(run.Generator.Exception);

        var actual = run.GeneratorDiagnostics.OrderBy(d => d.Location.SourceSpan.Start).ThenBy(d => d.Id, StringComparer.Ordinal).ToList();
        Assert.True(actual.Count == expected.Length, "Expected " + expected.Length + " diagnostic(s), got:\n" + string.Join("\n", actual));
        for (int i = 0; i < expected.Length; i++)
        {
            var d = actual[i];
            Assert.Equal(expected[i].Id, d.Id);
            Assert.Equal(expected[i].Severity, d.Severity);
            Assert.Equal(expected[i].Message, d.GetMessage(CultureInfo.InvariantCulture));
            Assert.True(spans[i] == d.Location.SourceSpan,
                $"{d.Id}: expected span '{source.Substring(spans[i].Start, spans[i].Length)}' {spans[i]}, got '{SpanText(source, d)}' {d.Location.SourceSpan}");
            Assert.Equal(otherSources.Length == 0 ? "Model.cs" : "Model0.cs", d.Location.GetLineSpan().Path);   // the harness numbers files when there are several
            // The line/column view agrees with the span (an external location carries both).
            var tree = run.Input.SyntaxTrees.First();   // the markup is the first file
            Assert.Equal(tree.GetLineSpan(spans[i]).Span, d.Location.GetLineSpan().Span);
        }

        var generatedErrors = run.ErrorsInGeneratedCode();
        Assert.True(generatedErrors.Count == 0, "Generated code does not compile:\n" + string.Join("\n", generatedErrors.Take(10)));
        return run;
    }

    private static string SpanText(string source, Diagnostic d)
        => d.Location.SourceSpan.End <= source.Length ? source.Substring(d.Location.SourceSpan.Start, d.Location.SourceSpan.Length) : "<out of range>";

    private static (string, DiagnosticSeverity, string) Error(string id, string message) => (id, DiagnosticSeverity.Error, message);

    private static void AssertNothingGenerated(GeneratorRun run) => Assert.Empty(run.Generator.GeneratedSources);

    [Fact]
    public void Valid_model_reports_nothing_and_compiles()
    {
        var run = GeneratorDriverHelper.Run(Model());
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Equal(new[] { "App.M.g.cs" }, run.Generator.GeneratedSources.Select(s => s.HintName));
        Assert.True(run.Output.GetDiagnostics().All(d => d.Severity != DiagnosticSeverity.Error), run.Describe());
    }

    [Fact]
    public void COL001_class_not_partial()
        => AssertNothingGenerated(AssertDiagnostics(Model(declaration: "public class [|M|]"),
            Error("COL001", "Class 'M' has [SketchedOptimizer] but is not declared partial; declare it 'partial' so the optimizer can be generated inside it")));

    [Fact]
    public void COL002_containing_type_not_partial()
    {
        const string markup = """
            using Collins;
            namespace App;

            public static class [|Outer|]
            {
                [SketchedOptimizer]
                public partial class M
                {
                    [Tensor(64, 64)] public float[] W = new float[4096];
                }
            }
            """;
        AssertNothingGenerated(AssertDiagnostics(markup, Error("COL002", "Type 'Outer' contains the [SketchedOptimizer] class 'M' but is not declared partial")));
    }

    [Fact]
    public void COL003_generic_class()
        => AssertNothingGenerated(AssertDiagnostics(Model(declaration: "public partial class [|M|]<T>"),
            Error("COL003", "Class 'M' has [SketchedOptimizer] but is generic; generated optimizers are specialised to constant shapes and need a non-generic class")));

    [Theory]
    [InlineData("0")]
    [InlineData("-3")]
    public void COL004_optimizer_ratio_below_one(string ratio)
        => AssertNothingGenerated(AssertDiagnostics(Model($"SketchedOptimizer([|Ratio = {ratio}|])"),
            Error("COL004", $"Optimizer 'Optimizer' has Ratio {ratio}; it must be at least 1 (a tensor may also use 0 to inherit the optimizer's ratio)")));

    [Fact]
    public void COL004_tensor_ratio_negative()
        => AssertNothingGenerated(AssertDiagnostics(Model(body: "[Tensor(8, 8, [|Ratio = -2|])] public float[] W = new float[64];"),
            Error("COL004", "Tensor 'W' has Ratio -2; it must be at least 1 (a tensor may also use 0 to inherit the optimizer's ratio)")));

    [Theory]
    [InlineData("Beta1", "1", "1")]
    [InlineData("Beta1", "1.5", "1.5")]
    [InlineData("Beta1", "-0.25", "-0.25")]
    [InlineData("Beta1", "double.NaN", "NaN")]
    [InlineData("Beta2", "1.0", "1")]
    [InlineData("Beta2", "-1e-3", "-0.001")]
    [InlineData("Beta2", "double.PositiveInfinity", "Infinity")]
    [InlineData("Beta2", "0.99999999999", "0.99999999999")]
    public void COL005_beta_outside_zero_one(string property, string value, string shown)
        => AssertNothingGenerated(AssertDiagnostics(Model($"SketchedOptimizer(Ratio = 4, [|{property} = {value}|])"),
            Error("COL005", $"Optimizer 'Optimizer' has {property} = {shown}; it must be in [0, 1), also when rounded to float")));

    [Theory]
    [InlineData("0", "0")]
    [InlineData("-1e-8", "-1E-08")]
    [InlineData("double.NaN", "NaN")]
    [InlineData("double.PositiveInfinity", "Infinity")]
    [InlineData("double.MaxValue", "1.7976931348623157E+308")]
    [InlineData("1e-50", "1E-50")]
    public void COL006_epsilon_not_positive_finite(string value, string shown)
        => AssertNothingGenerated(AssertDiagnostics(Model($"SketchedOptimizer(Ratio = 4, [|Epsilon = {value}|])"),
            Error("COL006", $"Optimizer 'Optimizer' has Epsilon = {shown}; it must be finite and greater than 0, also when rounded to float")));

    [Theory]
    [InlineData("-0.01", "-0.01")]
    [InlineData("double.NaN", "NaN")]
    [InlineData("double.PositiveInfinity", "Infinity")]
    public void COL007_weight_decay_negative_or_not_finite(string value, string shown)
        => AssertNothingGenerated(AssertDiagnostics(Model($"SketchedOptimizer(Ratio = 4, [|WeightDecay = {value}|])"),
            Error("COL007", $"Optimizer 'Optimizer' has WeightDecay = {shown}; it must be finite and at least 0")));

    [Theory]
    [InlineData("8, [|0|]", "dimension 0")]
    [InlineData("[|-5|], 8", "dimension -5")]
    [InlineData("8, 8, [|-1|]", "dimension -1")]
    [InlineData("8, [|N|]", "a dimension is not a constant")]
    public void COL008_invalid_dimension(string arguments, string why)
    {
        var run = AssertDiagnostics(Model(body: $"public static int N = 3; [Tensor({arguments})] public float[] W = new float[64];"),
            Error("COL008", $"Tensor 'W' has an invalid shape: {why}; every dimension must be a positive compile-time constant"));
        AssertNothingGenerated(run);
    }

    [Fact]
    public void COL008_no_dimensions()
        => AssertNothingGenerated(AssertDiagnostics(Model(body: "[[|Tensor|]] public float[] W = new float[64];"),
            Error("COL008", "Tensor 'W' has an invalid shape: no dimensions; every dimension must be a positive compile-time constant")));

    [Theory]
    [InlineData("65536, 65536", "4294967296")]
    [InlineData("2147483647", "2147483647")]
    [InlineData("2147483647, 2147483647, 2147483647", "9903520300447984150353281023")]
    public void COL009_tensor_too_large(string shape, string elements)
        => AssertNothingGenerated(AssertDiagnostics(Model(body: $"[[|Tensor({shape})|]] public float[] W = null!;"),
            Error("COL009", $"Tensor 'W' has {elements} elements; the kernels index at most 2147483646")));

    [Fact]
    public void COL009_largest_indexable_tensor_is_accepted()
    {
        // 2·3·357913941 = 2147483646 = the limit: accepted (the emitted code is only generated, not compiled here).
        var run = GeneratorDriverHelper.Run(Model("SketchedOptimizer(Ratio = 1)", "[Tensor(2, 3, 357913941)] public float[] W = null!;"));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Single(run.Generator.GeneratedSources);
    }

    [Fact]
    public void COL010_duplicate_tensor_name()
    {
        const string body = """
                [Tensor(8, 8, Name = "A")] public float[] W = new float[64];
                [Tensor(8, [|Name = "A"|])] public float[] B = new float[8];
            """;
        AssertNothingGenerated(AssertDiagnostics(Model(body: body),
            Error("COL010", "Tensor name 'A' is used by more than one member of 'M'; tensor names must be distinct")));
    }

    [Theory]
    [InlineData("\"1abc\"", "1abc", "it is not a valid C# identifier")]
    [InlineData("\"my weights\"", "my weights", "it is not a valid C# identifier")]
    [InlineData("\"\"", "", "it is empty")]
    [InlineData("\"class\"", "class", "it is a C# keyword")]
    [InlineData("\"Step\"", "Step", "it is a member name of the generated optimizer")]
    [InlineData("\"__x\"", "__x", "it is a member name of the generated optimizer")]
    public void COL011_invalid_tensor_name(string literal, string name, string why)
        => AssertNothingGenerated(AssertDiagnostics(Model(body: $"[Tensor(8, 8, [|Name = {literal}|])] public float[] W = new float[64];"),
            Error("COL011", $"Tensor name '{name}' is not usable: {why}")));

    [Fact]
    public void COL011_reserved_member_name_points_at_the_attribute()
        => AssertNothingGenerated(AssertDiagnostics(Model(body: "[[|Tensor(8, 8)|]] public float[] DefaultSettings = new float[64];"),
            Error("COL011", "Tensor name 'DefaultSettings' is not usable: it is a member name of the generated optimizer")));

    [Theory]
    [InlineData("Rotation", "Length", "its generated class in optimizer 'Optimizer' has a member of that name (Rotation layout)")]
    [InlineData("Rotation", "Rotations", "its generated class in optimizer 'Optimizer' has a member of that name (Rotation layout)")]
    [InlineData("Universal", "B", "its generated class in optimizer 'Optimizer' has a member of that name (Universal layout)")]
    [InlineData("Universal", "SignA", "its generated class in optimizer 'Optimizer' has a member of that name (Universal layout)")]
    public void COL011_tensor_named_like_a_member_of_its_generated_class(string layout, string name, string why)
        => AssertNothingGenerated(AssertDiagnostics(
            Model($"SketchedOptimizer(Ratio = 4, Layout = SketchLayout.{layout}, DenseThreshold = 0)", $"[Tensor(8, 8, [|Name = \"{name}\"|])] public float[] W = new float[64];"),
            Error("COL011", $"Tensor name '{name}' is not usable: {why}")));

    [Theory]
    [InlineData("SecondMoment = SecondMomentEstimate.Factored, Beta1 = 0", "FactorRows")]
    [InlineData("SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4", "FactorColumns")]
    [InlineData("SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4", "CodeBytes")]
    [InlineData("SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8", "QuantizedBlocks")]
    public void COL011_factored_tensor_named_like_a_member_of_its_generated_class(string settings, string name)
        => AssertNothingGenerated(AssertDiagnostics(
            Model($"SketchedOptimizer({settings}, DenseThreshold = 0)", $"[Tensor(8, 8, [|Name = \"{name}\"|])] public float[] W = new float[64];"),
            Error("COL011", $"Tensor name '{name}' is not usable: its generated class in optimizer 'Optimizer' has a member of that name (factored second moment)")));

    [Theory]
    [InlineData("plans")]        // __CreatePlans: VerifyPlan(plans[0], plans.Length, …) would read the local
    [InlineData("settings")]
    [InlineData("accelerator")]  // LoadDeviceKernels: accelerator.AccumulateKernel would read the local
    [InlineData("buffers")]      // the span Steps' local
    [InlineData("Save")]         // would hide SketchedOptimizerBase.Save
    [InlineData("LoadFromFile")]
    public void COL011_tensor_named_like_a_local_of_the_generated_code_or_a_base_member(string name)
        => AssertNothingGenerated(AssertDiagnostics(Model(body: $"[Tensor(8, 8, [|Name = \"{name}\"|])] public float[] W = new float[64];"),
            Error("COL011", $"Tensor name '{name}' is not usable: it is a member name of the generated optimizer")));

    [Theory]
    [InlineData("m")]
    [InlineData("v")]
    [InlineData("finite")]
    [InlineData("scalars")]
    [InlineData("flag")]
    public void Names_the_generated_code_no_longer_uses_are_fine(string name)
    {
        // Once locals of the emitted Step; since the runtime owns the step they clash with nothing, and m and v are common names.
        var run = GeneratorDriverHelper.Run(Model(body: $"[Tensor(8, 8, Name = \"{name}\")] public float[] W = new float[64]; [Tensor(8)] public float[] B = new float[8];"));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error || d.Severity == DiagnosticSeverity.Warning));
    }

    [Fact]
    public void A_tensor_named_B_is_fine_in_the_rotation_layout()
    {
        var run = GeneratorDriverHelper.Run(Model("SketchedOptimizer(Ratio = 4, DenseThreshold = 0)", "[Tensor(8, 8)] public float[] B = new float[64];"));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void COL011_step_parameter_clash()
    {
        const string body = """
                [Tensor(8, 8)] public float[] W = new float[64];
                [Tensor(8, [|Name = "WGrad"|])] public float[] B = new float[8];
            """;
        AssertNothingGenerated(AssertDiagnostics(Model(body: body),
            Error("COL011", "Tensor name 'WGrad' is not usable: its Step parameters 'WGrad'/'WGradGrad' clash with another tensor's")));
    }

    [Theory]
    [InlineData("0.9", "0.9")]
    [InlineData("0.5", "0.5")]
    public void COL025_factored_with_a_first_moment(string beta1, string shown)
        => AssertNothingGenerated(AssertDiagnostics(Model($"SketchedOptimizer(SecondMoment = SecondMomentEstimate.Factored, [|Beta1 = {beta1}|])"),
            Error("COL025", $"Optimizer 'Optimizer' has SecondMoment = Factored and Beta1 = {shown}; the factored estimate keeps no Count-Sketch first moment: set Beta1 = 0, keep m block-quantised (FirstMoment = FirstMomentStorage.Quantized8 or Quantized4), or choose SecondMoment Sum or Mean")));

    [Fact]
    public void COL025_reported_for_the_default_beta1_at_the_attribute()
        => AssertNothingGenerated(AssertDiagnostics("""
            using Collins;
            namespace App;

            [[|SketchedOptimizer(SecondMoment = SecondMomentEstimate.Factored)|]]
            public partial class M
            {
                [Tensor(8, 8)] public float[] W = new float[64];
            }
            """,
            Error("COL025", "Optimizer 'Optimizer' has SecondMoment = Factored and Beta1 = 0.9; the factored estimate keeps no Count-Sketch first moment: set Beta1 = 0, keep m block-quantised (FirstMoment = FirstMomentStorage.Quantized8 or Quantized4), or choose SecondMoment Sum or Mean")));

    [Fact]
    public void A_sketched_vector_under_the_factored_estimate_is_factored_as_n_rows_by_one_column()
    {
        // No diagnostic (COL026, which kept a Mean sketch for it, is retired): B's factored v̂ is its exact v.
        var run = AssertDiagnostics(Model("SketchedOptimizer(Ratio = 4, Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 4)",
            "[Tensor(8, 8)] public float[] W = new float[64];\n    [Tensor(8)] public float[] B = new float[8];"));
        string source = run.Sources["App.M.g.cs"];
        Assert.Contains("public const int FactorRows = 8, FactorColumns = 8;", source);   // W
        Assert.Contains("public const int FactorRows = 8, FactorColumns = 1;", source);   // B
        Assert.DoesNotContain("__Kernels.Rotation<", source);                             // no sketch left
        Assert.Contains("public static bool MeanSecondMoment => false;", source);
        Assert.Contains("VerifyFactoredPlan(plans[1]", source);
    }

    [Fact]
    public void COL027_update_clipping_needs_the_factored_estimate()
        => AssertNothingGenerated(AssertDiagnostics(Model("SketchedOptimizer(Beta1 = 0, [|UpdateClipping = 1|])"),
            Error("COL027", "Optimizer 'Optimizer' has UpdateClipping = 1; update clipping applies to SecondMoment = Factored only: set SecondMoment = SecondMomentEstimate.Factored (with Beta1 = 0), or remove UpdateClipping")));

    [Fact]
    public void COL028_beta2_schedule_needs_the_factored_estimate()
        => AssertNothingGenerated(AssertDiagnostics(Model("SketchedOptimizer(Beta1 = 0, [|Beta2Schedule = 0.8|])"),
            Error("COL028", "Optimizer 'Optimizer' has Beta2Schedule = 0.8; the β2 schedule applies to SecondMoment = Factored only: set SecondMoment = SecondMomentEstimate.Factored (with Beta1 = 0), or remove Beta2Schedule")));

    [Fact]
    public void COL028_beta2_schedule_above_one()
        => AssertNothingGenerated(AssertDiagnostics(Model("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, [|Beta2Schedule = 2|])"),
            Error("COL028", "Optimizer 'Optimizer' has Beta2Schedule = 2; it must be 0 (off) or in (0, 1] (Adafactor uses 0.8)")));

    [Fact]
    public void COL027_negative_update_clipping()
        => AssertNothingGenerated(AssertDiagnostics(Model("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, [|UpdateClipping = -1|])"),
            Error("COL027", "Optimizer 'Optimizer' has UpdateClipping = -1; it must be finite and >= 0 (0: off; Adafactor uses 1)")));

    [Theory]
    [InlineData("-1", "-1")]
    [InlineData("-1e-300", "-1E-300")]
    [InlineData("double.NaN", "NaN")]
    [InlineData("double.PositiveInfinity", "Infinity")]
    public void COL029_max_gradient_norm_negative_or_not_finite(string value, string shown)
        => AssertNothingGenerated(AssertDiagnostics(Model($"SketchedOptimizer(Ratio = 4, [|MaxGradientNorm = {value}|])"),
            Error("COL029", $"Optimizer 'Optimizer' has MaxGradientNorm = {shown}; it must be finite and >= 0: use 0 (off) or the bound on the global gradient norm, as clip_grad_norm_'s max_norm (1.0 is usual for transformers)")));

    [Fact]
    public void COL029_a_valid_bound_is_emitted_for_every_kind()
    {
        // Valid for any estimate and layout (no COL029), and in DefaultSettings as given.
        var run = GeneratorDriverHelper.Run(Model("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, MaxGradientNorm = 0.5)"));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Contains("    MaxGradientNorm = 0.5d,", Assert.Single(run.Generator.GeneratedSources).SourceText.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void COL030_a_quantised_first_moment_needs_the_factored_estimate()
        => AssertNothingGenerated(AssertDiagnostics(Model("SketchedOptimizer([|FirstMoment = FirstMomentStorage.Quantized8|])"),
            Error("COL030", "Optimizer 'Optimizer' has FirstMoment = Quantized8; a quantised first moment applies to SecondMoment = Factored only: set SecondMoment = SecondMomentEstimate.Factored, or remove FirstMoment")));

    [Fact]
    public void COL030_a_quantised_first_moment_needs_beta1()
        => AssertNothingGenerated(AssertDiagnostics(Model("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, [|FirstMoment = FirstMomentStorage.Quantized4|])"),
            Error("COL030", "Optimizer 'Optimizer' has FirstMoment = Quantized4; with Beta1 = 0 there is no first moment to store: set Beta1 > 0 (e.g. 0.9), or remove FirstMoment")));

    [Theory]
    [InlineData("100")]
    [InlineData("4")]
    [InlineData("0")]
    public void COL030_a_quantisation_block_that_is_not_a_power_of_two_from_8(string block)
        => AssertNothingGenerated(AssertDiagnostics(Model($"SketchedOptimizer(SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, [|QuantizationBlock = {block}|])"),
            Error("COL030", $"Optimizer 'Optimizer' has FirstMoment = Quantized8; QuantizationBlock = {block} must be a power of two from 8 to 65536 (default 128)")));

    [Fact]
    public void A_sketched_vector_takes_a_quantised_first_moment_as_a_factored_tensor()
    {
        // No diagnostic (COL031, which refused it, is retired): B is factored as 8 × 1 and its m block-quantised.
        var run = AssertDiagnostics(Model("SketchedOptimizer(Ratio = 4, SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, DenseThreshold = 4)",
            "[Tensor(8, 8)] public float[] W = new float[64];\n    [Tensor(8)] public float[] B = new float[8];"));
        string source = run.Sources["App.M.g.cs"];
        Assert.Contains("public const int FactorRows = 8, FactorColumns = 1;", source);
        Assert.Contains("VerifyFactoredPlan(plans[1], B.Length, B.Buckets, B.Rows, B.IsDense, B.FactorRows, B.FactorColumns, B.QuantizedBlocks, B.CodeBytes);", source);
    }

    [Fact]
    public void A_quantised_first_moment_generates_its_constants_and_plan_check()
    {
        var run = AssertDiagnostics(Model("SketchedOptimizer(SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, QuantizationBlock = 16, StochasticRounding = true, DenseThreshold = 16)",
            "[Tensor(8, 9)] public float[] W = new float[72];\n    [Tensor(8)] public float[] B = new float[8];"));
        string source = run.Sources["App.M.g.cs"];
        Assert.Contains("FirstMoment = global::Collins.FirstMomentStorage.Quantized4,", source);
        Assert.Contains("QuantizationBlock = 16,", source);
        Assert.Contains("StochasticRounding = true,", source);
        Assert.Contains("public const int QuantizedBlocks = 5, CodeBytes = 40;", source);   // ceil(72 / 16) blocks of 16 / 2 bytes
        Assert.Contains("public const long StateBytes = " + (4 * (8 + 9 + 5) + 40) + "L,", source);
        Assert.Contains("VerifyFactoredPlan(plans[0], W.Length, W.Buckets, W.Rows, W.IsDense, W.FactorRows, W.FactorColumns, W.QuantizedBlocks, W.CodeBytes);", source);
    }

    [Theory]
    [InlineData("3")]
    [InlineData("100")]
    public void COL030_an_invalid_quantisation_block_is_refused_with_the_sketch_storage_too(string block)
        // OptimizerSettings.Validate refuses it for every storage, so the generated constructor would throw.
        => AssertNothingGenerated(AssertDiagnostics(Model($"SketchedOptimizer(Ratio = 4, [|QuantizationBlock = {block}|])"),
            Error("COL030", $"Optimizer 'Optimizer' has FirstMoment = Sketch; QuantizationBlock = {block} must be a power of two from 8 to 65536 (default 128), whatever FirstMoment is (the optimizer's settings refuse it when it is created): remove QuantizationBlock")));

    // ------------------------------------------------------------------ settings that change nothing (warnings, COL032–COL035)

    private static (string, DiagnosticSeverity, string) Warning(string id, string message) => (id, DiagnosticSeverity.Warning, message);

    /// <summary>A warning leaves the class generated, and the generated code compiles (AssertDiagnostics checks that).</summary>
    private static void AssertGenerated(GeneratorRun run) => Assert.Equal(new[] { "App.M.g.cs" }, run.Generator.GeneratedSources.Select(s => s.HintName));

    private const string SketchFix = "set FirstMoment = FirstMomentStorage.Quantized8 or Quantized4 (with SecondMoment = Factored and Beta1 > 0), or remove ";
    private const string DenseReason = "every tensor stays dense: fewer entries than DenseThreshold = 4096, an effective Ratio of 1, or Sketching = Dense";
    private const string FactorFix = "lower DenseThreshold (0 factors every tensor) or mark a tensor Sketching = TensorSketching.Sketched, or remove ";

    private static string NoFactoredTensor(string written, string argument, int threshold = 4096)
        => $"Optimizer 'Optimizer' has {written}, but no tensor is factored (every tensor stays dense: fewer entries than DenseThreshold = {threshold}, an effective Ratio of 1, or Sketching = Dense; dense tensors keep AdamW's fp32 moments), so it has no effect: {FactorFix}{argument}";

    [Theory]
    [InlineData("StochasticRounding = true", "StochasticRounding")]
    [InlineData("QuantizationBlock = 64", "QuantizationBlock")]
    [InlineData("QuantizationBlock = 65536", "QuantizationBlock")]
    public void COL032_a_quantisation_setting_with_the_sketch_storage(string written, string argument)
        => AssertGenerated(AssertDiagnostics(Model($"SketchedOptimizer(Ratio = 4, DenseThreshold = 16, [|{written}|])"),
            Warning("COL032", $"Optimizer 'Optimizer' has {written}, but no tensor keeps a block-quantised first moment (FirstMoment is Sketch, the default), so it has no effect: {SketchFix}{argument}")));

    [Fact]
    public void COL032_and_COL033_a_quantised_first_moment_of_an_all_dense_model()
        // W (64 entries) and B (8) are below DenseThreshold 4096: both keep AdamW's fp32 m, so the storage, its block and its
        // rounding all do nothing, each reported at its own argument.
        => AssertGenerated(AssertDiagnostics(Model("SketchedOptimizer(SecondMoment = SecondMomentEstimate.Factored, [|FirstMoment = FirstMomentStorage.Quantized8|], [|QuantizationBlock = 32|], [|StochasticRounding = true|])"),
            Warning("COL033", NoFactoredTensor("FirstMoment = Quantized8", "FirstMoment")),
            Warning("COL032", $"Optimizer 'Optimizer' has QuantizationBlock = 32, but no tensor keeps a block-quantised first moment ({DenseReason}), so it has no effect: {FactorFix}QuantizationBlock"),
            Warning("COL032", $"Optimizer 'Optimizer' has StochasticRounding = true, but no tensor keeps a block-quantised first moment ({DenseReason}), so it has no effect: {FactorFix}StochasticRounding")));

    [Theory]
    [InlineData("SketchedOptimizer(Ratio = 4)")]                                                       // every default
    [InlineData("SketchedOptimizer(Ratio = 4, StochasticRounding = false, QuantizationBlock = 128)")] // the defaults, written
    [InlineData("SketchedOptimizer(SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized4, QuantizationBlock = 16, StochasticRounding = true, DenseThreshold = 16)")] // W quantised
    public void COL032_is_not_reported_for_defaults_or_a_quantised_tensor(string attribute)
        => AssertGenerated(AssertDiagnostics(Model(attribute)));

    [Theory]
    [InlineData("UpdateClipping = 1", "UpdateClipping")]
    [InlineData("UpdateClipping = 0.5", "UpdateClipping")]
    [InlineData("Beta2Schedule = 0.8", "Beta2Schedule")]
    public void COL033_a_factored_setting_when_every_tensor_is_below_the_dense_threshold(string written, string argument)
        => AssertGenerated(AssertDiagnostics(Model($"SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, [|{written}|])"),
            Warning("COL033", NoFactoredTensor(written, argument))));

    [Fact]
    public void COL033_every_factored_setting_of_a_model_kept_dense_by_Ratio_1()
        // DenseThreshold = 0 would factor both tensors, but Ratio = 1 keeps every tensor dense AdamW.
        => AssertGenerated(AssertDiagnostics(Model("SketchedOptimizer(Ratio = 1, DenseThreshold = 0, SecondMoment = SecondMomentEstimate.Factored, [|FirstMoment = FirstMomentStorage.Quantized4|], [|UpdateClipping = 1|], [|Beta2Schedule = 0.8|])"),
            Warning("COL033", NoFactoredTensor("FirstMoment = Quantized4", "FirstMoment", threshold: 0)),
            Warning("COL033", NoFactoredTensor("UpdateClipping = 1", "UpdateClipping", threshold: 0)),
            Warning("COL033", NoFactoredTensor("Beta2Schedule = 0.8", "Beta2Schedule", threshold: 0))));

    [Theory]
    [InlineData("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1, Beta2Schedule = 0.8, DenseThreshold = 64)")] // W factored
    [InlineData("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 0, Beta2Schedule = 0)")]                      // off, written
    [InlineData("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored)")]                                                             // every tensor dense, nothing set
    public void COL033_is_not_reported_with_a_factored_tensor_or_the_settings_off(string attribute)
        => AssertGenerated(AssertDiagnostics(Model(attribute)));

    [Fact]
    public void COL033_is_not_reported_when_a_tensor_marked_sketched_is_factored()
        => AssertGenerated(AssertDiagnostics(Model("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, UpdateClipping = 1)",
            "[Tensor(8, 8)] public float[] W = new float[64];\n    [Tensor(8, Sketching = TensorSketching.Sketched)] public float[] B = new float[8];")));

    [Fact]
    public void COL034_layout_under_the_factored_estimate()
        => AssertGenerated(AssertDiagnostics(Model("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 16, [|Layout = SketchLayout.Universal|])"),
            Warning("COL034", "Optimizer 'Optimizer' has Layout = Universal, but no tensor is hashed (under SecondMoment = Factored each tensor is factored or dense), so the layout has no effect on the step or the state: remove Layout")));

    [Fact]
    public void COL034_layout_when_every_tensor_is_dense()
        => AssertGenerated(AssertDiagnostics(Model("SketchedOptimizer(Ratio = 4, [|Layout = SketchLayout.Universal|])"),
            Warning("COL034", $"Optimizer 'Optimizer' has Layout = Universal, but no tensor is hashed ({DenseReason}), so the layout has no effect on the step or the state: remove Layout")));

    [Theory]
    [InlineData("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 16, Layout = SketchLayout.Rotation)")] // the default, written
    [InlineData("SketchedOptimizer(Ratio = 4, DenseThreshold = 16, Layout = SketchLayout.Universal)")]                                           // W hashed
    [InlineData("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Mean, DenseThreshold = 16, Layout = SketchLayout.Universal)")] // W hashed (Mean)
    public void COL034_is_not_reported_for_the_default_or_with_a_hashed_tensor(string attribute)
        => AssertGenerated(AssertDiagnostics(Model(attribute)));

    private const string FactoredRatio = "Tensor 'W' has Ratio = 8, but every optimizer of 'M' factors it, and a factored tensor keeps R + C floats of v whatever its ratio, so the ratio has no effect: remove Ratio (Ratio = 1 would keep the tensor dense)";

    [Fact]
    public void COL035_a_tensor_ratio_on_a_factored_tensor()
    {
        var run = AssertDiagnostics(Model("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 16)",
                "[Tensor(8, 8, [|Ratio = 8|])] public float[] W = new float[64];\n    [Tensor(8)] public float[] B = new float[8];"),
            Warning("COL035", FactoredRatio));
        AssertGenerated(run);
        Assert.Contains("public const int FactorRows = 8, FactorColumns = 8;", run.Sources["App.M.g.cs"]);   // W is factored as declared
    }

    [Fact]
    public void COL035_is_reported_once_when_every_variant_factors_the_tensor()
    {
        const string markup = """
            using Collins;
            namespace App;

            [SketchedOptimizer(Name = "A", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 16)]
            [SketchedOptimizer(Name = "B", SecondMoment = SecondMomentEstimate.Factored, FirstMoment = FirstMomentStorage.Quantized8, DenseThreshold = 0)]
            public partial class M
            {
                [Tensor(8, 8, [|Ratio = 8|])] public float[] W = new float[64];
            }
            """;
        var run = AssertDiagnostics(markup, Warning("COL035", FactoredRatio));
        Assert.Equal(2, run.Generator.GeneratedSources.Length);
    }

    [Theory]
    [InlineData("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 16)", "Ratio = 1")]   // keeps W dense: an effect
    [InlineData("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 16)", "Ratio = 0")]   // inherits, written
    [InlineData("SketchedOptimizer(Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, Ratio = 1, DenseThreshold = 16)", "Ratio = 8")] // W factored only by its own ratio
    [InlineData("SketchedOptimizer(Ratio = 4, DenseThreshold = 16)", "Ratio = 8")]                                                 // hashed: k = 8 instead of 16
    public void COL035_is_not_reported_where_the_tensor_ratio_has_an_effect(string attribute, string ratio)
        => AssertGenerated(AssertDiagnostics(Model(attribute, $"[Tensor(8, 8, {ratio})] public float[] W = new float[64];\n    [Tensor(8)] public float[] B = new float[8];")));

    [Fact]
    public void COL035_is_not_reported_when_one_variant_hashes_the_tensor()
    {
        const string markup = """
            using Collins;
            namespace App;

            [SketchedOptimizer(Name = "A", Beta1 = 0, SecondMoment = SecondMomentEstimate.Factored, DenseThreshold = 16)]
            [SketchedOptimizer(Name = "B", Ratio = 4, DenseThreshold = 16)]
            public partial class M
            {
                [Tensor(8, 8, Ratio = 8)] public float[] W = new float[64];
            }
            """;
        var run = AssertDiagnostics(markup);
        Assert.Equal(2, run.Generator.GeneratedSources.Length);
    }

    [Fact]
    public void COL012_no_tensors()
        => AssertNothingGenerated(AssertDiagnostics(Model(body: "public float[] W = new float[64];", declaration: "public partial class [|M|]"),
            Error("COL012", "Class 'M' has [SketchedOptimizer] but no field or property with [Tensor]")));

    [Fact]
    public void COL013_ratio_larger_than_tensor_is_a_warning_and_still_generates()
    {
        var run = AssertDiagnostics(Model("SketchedOptimizer(Ratio = 16)", "[[|Tensor(3, 4, Sketching = TensorSketching.Sketched)|]] public float[] W = new float[12];"),
            ("COL013", DiagnosticSeverity.Warning, "Tensor 'W' has 12 elements but is sketched with ratio 16 in optimizer 'Optimizer': all its entries share one bucket"));
        Assert.Single(run.Generator.GeneratedSources);
        Assert.Contains(", Buckets = 1, ", run.Sources["App.M.g.cs"]);
    }

    [Fact]
    public void COL014_duplicate_variant_name()
    {
        const string markup = """
            using Collins;
            namespace App;

            [SketchedOptimizer(Name = "Fast", Ratio = 4)]
            [SketchedOptimizer([|Name = "Fast"|], Ratio = 8)]
            public partial class M
            {
                [Tensor(64, 64)] public float[] W = new float[4096];
            }
            """;
        // A class with an error gets no generated code, not even the first (valid) variant.
        AssertNothingGenerated(AssertDiagnostics(markup,
            Error("COL014", "Class 'M' has more than one [SketchedOptimizer] named 'Fast'; give each variant a distinct Name")));
    }

    [Fact]
    public void An_error_in_one_variant_generates_no_variant_of_the_class()
    {
        const string markup = """
            using Collins;
            namespace App;

            [SketchedOptimizer(Name = "Good", Ratio = 4)]
            [SketchedOptimizer(Name = "Bad", [|Ratio = 0|])]
            public partial class M
            {
                [Tensor(64, 64)] public float[] W = new float[4096];
            }
            """;
        AssertNothingGenerated(AssertDiagnostics(markup,
            Error("COL004", "Optimizer 'Bad' has Ratio 0; it must be at least 1 (a tensor may also use 0 to inherit the optimizer's ratio)")));
    }

    [Fact]
    public void COL014_duplicate_default_name_points_at_the_second_attribute()
    {
        const string markup = """
            using Collins;
            namespace App;

            [SketchedOptimizer(Ratio = 4)]
            [[|SketchedOptimizer(Ratio = 8)|]]
            public partial class M
            {
                [Tensor(64, 64)] public float[] W = new float[4096];
            }
            """;
        AssertNothingGenerated(AssertDiagnostics(markup,
            Error("COL014", "Class 'M' has more than one [SketchedOptimizer] named 'Optimizer'; give each variant a distinct Name")));
    }

    [Fact]
    public void COL014_duplicate_across_partial_declarations()
    {
        const string markup = """
            using Collins;
            namespace App;

            [SketchedOptimizer(Ratio = 4)]
            public partial class M
            {
                [Tensor(64, 64)] public float[] W = new float[4096];
            }

            [[|SketchedOptimizer(Ratio = 8)|]]
            public partial class M { }
            """;
        AssertNothingGenerated(AssertDiagnostics(markup,
            Error("COL014", "Class 'M' has more than one [SketchedOptimizer] named 'Optimizer'; give each variant a distinct Name")));
    }

    [Theory]
    [InlineData("\"my optimizer\"", "my optimizer", "it is not a valid C# identifier")]
    [InlineData("\"\"", "", "it is empty")]
    [InlineData("null", "", "it is empty")]
    [InlineData("\"int\"", "int", "it is a C# keyword")]
    [InlineData("\"M\"", "M", "it is the name of the model class")]
    [InlineData("\"W\"", "W", "a tensor has the same name")]
    [InlineData("\"Step\"", "Step", "the generated optimizer has a member of that name")]
    [InlineData("\"TensorSpecs\"", "TensorSpecs", "the generated optimizer has a member of that name")]
    public void COL015_invalid_variant_name(string literal, string name, string why)
        => AssertNothingGenerated(AssertDiagnostics(Model($"SketchedOptimizer([|Name = {literal}|], Ratio = 4)"),
            Error("COL015", $"Optimizer name '{name}' is not usable: {why}")));

    [Fact]
    public void COL015_variant_named_like_an_existing_member()
        => AssertNothingGenerated(AssertDiagnostics(Model("[|SketchedOptimizer(Ratio = 4)|]", Tensors + "\n    public int Optimizer;"),
            Error("COL015", "Optimizer name 'Optimizer' is not usable: the class already has a member of that name")));

    [Fact]
    public void COL016_negative_dense_threshold()
        => AssertNothingGenerated(AssertDiagnostics(Model("SketchedOptimizer(Ratio = 4, [|DenseThreshold = -1|])"),
            Error("COL016", "Optimizer 'Optimizer' has DenseThreshold = -1; it must be at least 0")));

    [Fact]
    public void COL017_too_many_rotation_rows()
        => AssertNothingGenerated(AssertDiagnostics(Model("SketchedOptimizer(Ratio = 2000)", "[[|Tensor(100, 100)|]] public float[] W = new float[10000];"),
            Error("COL017", "Tensor 'W' would have 2000 Rotation rows with ratio 2000 in optimizer 'Optimizer'; the generated kernels unroll one statement per row and allow at most 1024")));

    [Fact]
    public void COL017_not_reported_at_the_limit_or_for_the_universal_layout()
    {
        var atLimit = GeneratorDriverHelper.Run(Model("SketchedOptimizer(Ratio = 1024)", "[Tensor(1024, 1024)] public float[] W = null!;"));
        Assert.Empty(atLimit.GeneratorDiagnostics);
        Assert.Contains(", Rows = 1024, ", atLimit.Sources["App.M.g.cs"]);
        var universal = GeneratorDriverHelper.Run(Model("SketchedOptimizer(Ratio = 2000, Layout = SketchLayout.Universal)", "[Tensor(100, 100)] public float[] W = null!;"));
        Assert.Empty(universal.GeneratorDiagnostics);
        Assert.Single(universal.Generator.GeneratedSources);
    }

    [Theory]
    [InlineData("double[]", "double[]", " = null!;")]
    [InlineData("float", "float", ";")]
    [InlineData("System.Collections.Generic.List<float>", "List<float>", " = null!;")]
    [InlineData("float[,]", "float[*,*]", " = null!;")]
    [InlineData("float[][]", "float[][]", " = null!;")]
    [InlineData("int[]", "int[]", " = null!;")]
    [InlineData("System.Memory<float>", "Memory<float>", ";")]
    public void COL018_tensor_field_that_is_not_a_float_array(string type, string shown, string rest)
        => AssertNothingGenerated(AssertDiagnostics(Model(body: $"[Tensor(8, 8)] public [|{type}|] W{rest}\n    [Tensor(8)] public float[] B = new float[8];"),
            Error("COL018", $"Member 'W' has [Tensor] but its type is '{shown}'; declare it as float[] (a one-dimensional float array field or property)")));

    // Stand-ins for TorchSharp's tensor type and Collins.TorchSharp's helper, by the metadata names the generator looks for.
    private const string FakeTorch = """

        namespace TorchSharp { public static partial class torch { public class Tensor { } } }
        namespace TorchSharp.Modules { public class Parameter : TorchSharp.torch.Tensor { } }
        """;
    private const string FakeAdapter = """

        namespace Collins.TorchSharp
        {
            public static class GeneratedTorchStep
            {
                public static System.Span<float> Parameter(global::TorchSharp.torch.Tensor? t, string name, params System.ReadOnlySpan<long> shape) => default;
                public static System.ReadOnlySpan<float> Gradient(global::TorchSharp.torch.Tensor? t, string name, params System.ReadOnlySpan<long> shape) => default;
            }
        }
        """;

    [Fact]
    public void TorchSharp_parameter_members_get_a_module_step()
    {
        var run = GeneratorDriverHelper.Run(Model(body: "[Tensor(8, 8)] public TorchSharp.Modules.Parameter W = null!; [Tensor(8)] public TorchSharp.torch.Tensor B = null!;"), FakeTorch, FakeAdapter);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        string source = run.Generator.GeneratedSources.Single().SourceText.ToString();
        Assert.Contains("public global::Collins.StepOutcome Step(float learningRate, global::App.M model)", source);
        Assert.Contains("global::Collins.TorchSharp.GeneratedTorchStep.Parameter(model.W, \"W\", 8, 8), global::Collins.TorchSharp.GeneratedTorchStep.Gradient(model.W, \"W\", 8, 8),", source);
        Assert.DoesNotContain("class Gradients", source);
    }

    [Fact]
    public void COL022_float_arrays_and_torch_tensors_in_one_model()
        => AssertNothingGenerated(AssertDiagnosticsBeside(new[] { FakeTorch, FakeAdapter }, Model(body: "[[|Tensor(8, 8)|]] public float[] W = new float[64]; [Tensor(8)] public TorchSharp.Modules.Parameter B = null!;"),
            Error("COL022", "Class 'M' declares [Tensor] member 'W' as float[] and 'B' as a TorchSharp tensor; declare every tensor of the class the same way")));

    [Fact]
    public void COL023_torch_tensors_without_the_adapter_package()
        => AssertNothingGenerated(AssertDiagnosticsBeside(new[] { FakeTorch }, Model(body: "[[|Tensor(8, 8)|]] public TorchSharp.Modules.Parameter W = null!;"),
            Error("COL023", "Class 'M' declares [Tensor] member 'W' as a TorchSharp tensor, which the generated Step reads through the Collins.TorchSharp adapter; add a PackageReference to Collins.Generators.TorchSharp")));

    [Theory]
    [InlineData(LanguageVersion.CSharp12, "12.0")]
    [InlineData(LanguageVersion.CSharp10, "10.0")]
    public void COL024_language_version_below_13(LanguageVersion version, string shown)
    {
        var (source, spans) = Markup.Parse(Model(declaration: "public partial class [|M|]"));
        var options = GeneratorDriverHelper.ParseOptions.WithLanguageVersion(version);
        var compilation = CSharpCompilation.Create("Old", new[] { CSharpSyntaxTree.ParseText(source, options, "Model.cs") },
            GeneratorDriverHelper.References, GeneratorDriverHelper.CompilationOptions);
        var driver = CSharpGeneratorDriver.Create(new[] { new SketchedOptimizerGenerator().AsSourceGenerator() }, parseOptions: options);
        var result = driver.RunGenerators(compilation).GetRunResult().Results.Single();
        Assert.Null(result.Exception);
        var d = Assert.Single(result.Diagnostics);
        Assert.Equal("COL024", d.Id);
        Assert.Equal(spans[0], d.Location.SourceSpan);
        Assert.Equal($"Class 'M' has [SketchedOptimizer], but this project compiles with C# {shown}; the generated optimizer needs C# 13 or later "
                     + "(ref struct interfaces, collection expressions, static abstract interface members): set <LangVersion>13</LangVersion> or later, or remove the attribute",
                     d.GetMessage(CultureInfo.InvariantCulture));
        Assert.Empty(result.GeneratedSources);
    }

    [Fact]
    public void COL024_not_reported_at_csharp_13_and_the_code_compiles()
    {
        var options = GeneratorDriverHelper.ParseOptions.WithLanguageVersion(LanguageVersion.CSharp13);
        var compilation = CSharpCompilation.Create("Thirteen", new[] { CSharpSyntaxTree.ParseText(Model(), options, "Model.cs") },
            GeneratorDriverHelper.References, GeneratorDriverHelper.CompilationOptions);
        GeneratorDriver driver = CSharpGeneratorDriver.Create(new[] { new SketchedOptimizerGenerator().AsSourceGenerator() }, parseOptions: options);
        driver = driver.RunGeneratorsAndUpdateCompilation(compilation, out var output, out var diagnostics);
        Assert.Empty(diagnostics);
        Assert.Single(driver.GetRunResult().GeneratedTrees);
        var errors = output.GetDiagnostics().Where(e => e.Severity == DiagnosticSeverity.Error).ToList();
        Assert.True(errors.Count == 0, string.Join("\n", errors.Take(5)));
    }

    [Fact]
    public void COL021_write_only_tensor_property()
        => AssertNothingGenerated(AssertDiagnostics(Model(body: "private float[] _w = new float[64];\n    [Tensor(8, 8)] public float[] [|W|] { set => _w = value; }"),
            Error("COL021", "Property 'W' has [Tensor] but no get accessor; the generated Step(lr, model, gradients) reads it: add a getter (it may be private)")));

    [Fact]
    public void A_tensor_property_with_a_private_getter_compiles()
    {
        var run = GeneratorDriverHelper.Run(Model(body: "[Tensor(8, 8)] public float[] W { private get; set; } = new float[64];"));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Empty(run.Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
    }

    [Fact]
    public void COL018_tensor_property_that_is_not_a_float_array()
        => AssertNothingGenerated(AssertDiagnostics(Model(body: "[Tensor(8, 8, Name = \"Weights\")] public [|double[]|] W { get; set; } = new double[64];"),
            Error("COL018", "Member 'W' has [Tensor] but its type is 'double[]'; declare it as float[] (a one-dimensional float array field or property)")));

    [Fact]
    public void COL018_not_reported_for_float_array_fields_and_properties_nullable_or_not()
    {
        var run = GeneratorDriverHelper.Run(Model(body: """
                [Tensor(8, 8)] public float[] W = new float[64];
                [Tensor(8)] public float[]? B { get; set; }
                [Tensor(2, 2)] internal float[] C { get; } = new float[4];
            """));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Single(run.Generator.GeneratedSources);
        Assert.Empty(run.ErrorsInGeneratedCode());
    }

    [Fact]
    public void COL019_tensor_in_a_class_without_SketchedOptimizer_is_a_warning()
    {
        const string markup = """
            using Collins;
            namespace App;

            public class Plain
            {
                [[|Tensor(8, 8)|]] public float[] W = new float[64];
                [[|Tensor(4)|]] public float[] P { get; set; } = new float[4];
                public float[] NotATensor = new float[2];
            }
            """;
        var run = AssertDiagnostics(markup,
            ("COL019", DiagnosticSeverity.Warning, "Member 'W' has [Tensor] but 'Plain' has no [SketchedOptimizer], so no optimizer uses it; add [SketchedOptimizer] to 'Plain' or remove [Tensor]"),
            ("COL019", DiagnosticSeverity.Warning, "Member 'P' has [Tensor] but 'Plain' has no [SketchedOptimizer], so no optimizer uses it; add [SketchedOptimizer] to 'Plain' or remove [Tensor]"));
        AssertNothingGenerated(run);
    }

    [Fact]
    public void COL019_once_per_field_declaration_and_for_a_class_nested_in_a_model()
    {
        const string markup = """
            using Collins;
            namespace App;

            [SketchedOptimizer(Ratio = 4)]
            public partial class M
            {
                [Tensor(8, 8)] public float[] W = new float[64];

                public struct Inner
                {
                    [[|Tensor(2)|]] public float[] A, B;
                }
            }
            """;
        var run = AssertDiagnostics(markup,
            ("COL019", DiagnosticSeverity.Warning, "Member 'A' has [Tensor] but 'Inner' has no [SketchedOptimizer], so no optimizer uses it; add [SketchedOptimizer] to 'Inner' or remove [Tensor]"));
        // A warning elsewhere does not stop the model class from being generated.
        Assert.Equal(new[] { "App.M.g.cs" }, run.Generator.GeneratedSources.Select(s => s.HintName));
    }

    [Fact]
    public void COL019_not_reported_when_another_partial_declaration_has_SketchedOptimizer()
    {
        var run = GeneratorDriverHelper.Run("""
            using Collins;
            namespace App;
            public partial class M { [Tensor(8)] public float[] B = new float[8]; }
            """, """
            using Collins;
            namespace App;
            [SketchedOptimizer(Ratio = 4)]
            public partial class M { [Tensor(8, 8)] public float[] W = new float[64]; }
            """);
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Single(run.Generator.GeneratedSources);
    }

    [Theory]
    [InlineData("Tensor(10, 11)", "new float[100]", "10, 11", "110", "100")]
    [InlineData("Tensor(10, 11)", "new float[10 * 11 + 1]", "10, 11", "110", "111")]
    [InlineData("Tensor(4, 4)", "new float[N2 * 3]", "4, 4", "16", "12")]
    [InlineData("Tensor(4)", "new float[] { 1f, 2f, 3f }", "4", "4", "3")]
    [InlineData("Tensor(3)", "new[] { 1f, 2f }", "3", "3", "2")]
    [InlineData("Tensor(2, 3)", "new float[0]", "2, 3", "6", "0")]
    [InlineData("Tensor(8)", "new float[8L * 2]!", "8", "8", "16")]
    public void COL020_initialiser_length_differs_from_the_shape(string attribute, string initializer, string shape, string elements, string allocated)
        => AssertNothingGenerated(AssertDiagnostics(Model(body: $"public const int N2 = 4;\n    [{attribute}] public float[] W = [|{initializer}|];"),
            Error("COL020", $"Tensor 'W' has shape [{shape}] ({elements} elements) but its initialiser creates an array of {allocated} elements; allocate new float[{elements}]")));

    [Fact]
    public void COL020_on_a_property_initialiser_names_the_tensor()
        => AssertNothingGenerated(AssertDiagnostics(Model(body: "[Tensor(10, 11, Name = \"Emb\")] public float[] E { get; set; } = [|new float[100]|];"),
            Error("COL020", "Tensor 'Emb' has shape [10, 11] (110 elements) but its initialiser creates an array of 100 elements; allocate new float[110]")));

    [Fact]
    public void COL020_not_reported_for_matching_or_non_constant_lengths()
    {
        var run = GeneratorDriverHelper.Run(Model(body: """
                public const int N2 = 4; public static int N = 3;
                [Tensor(10, 11)] public float[] A = new float[10 * 11];
                [Tensor(4, 4)] public float[] B = new float[N2 * N2];
                [Tensor(3)] public float[] C = new float[] { 1f, 2f, 3f };
                [Tensor(7)] public float[] D = new float[N];
                [Tensor(5)] public float[] E = [];
                [Tensor(6)] public float[] F = null!;
                [Tensor(2)] public float[] G { get; set; } = System.Array.Empty<float>();
            """));
        Assert.Empty(run.GeneratorDiagnostics);
        Assert.Single(run.Generator.GeneratedSources);
        Assert.Empty(run.ErrorsInGeneratedCode());
    }

    [Fact]
    public void Several_problems_are_all_reported_at_their_own_spans()
        => AssertNothingGenerated(AssertDiagnostics(Model("SketchedOptimizer([|Ratio = 0|], [|Beta1 = 2|], [|Epsilon = 0|])"),
            Error("COL004", "Optimizer 'Optimizer' has Ratio 0; it must be at least 1 (a tensor may also use 0 to inherit the optimizer's ratio)"),
            Error("COL005", "Optimizer 'Optimizer' has Beta1 = 2; it must be in [0, 1), also when rounded to float"),
            Error("COL006", "Optimizer 'Optimizer' has Epsilon = 0; it must be finite and greater than 0, also when rounded to float")));

    // ------------------------------------------------------------------ the catalogue itself

    private static readonly Regex IdPattern = new("^COL[0-9]{3}$");

    [Fact]
    public void Every_descriptor_has_a_stable_id_title_message_category_and_help_link()
    {
        var all = DiagnosticDescriptors.ById.Values.ToList();
        Assert.True(all.Count >= 17);
        Assert.Equal(all.Count, all.Select(d => d.Id).Distinct().Count());
        foreach (var d in all)
        {
            Assert.Matches(IdPattern, d.Id);
            Assert.False(string.IsNullOrWhiteSpace(d.Title.ToString(CultureInfo.InvariantCulture)), d.Id);
            Assert.False(string.IsNullOrWhiteSpace(d.MessageFormat.ToString(CultureInfo.InvariantCulture)), d.Id);
            Assert.Equal("Collins.Generators", d.Category);
            Assert.True(d.IsEnabledByDefault);
            Assert.Equal("https://github.com/collins-generators/collins#diagnostics-" + d.Id.ToLowerInvariant(), d.HelpLinkUri);
        }
        // Every public descriptor field is in the index (so none escapes the release tracking below).
        var fields = typeof(DiagnosticDescriptors).GetFields().Where(f => f.FieldType == typeof(DiagnosticDescriptor)).Select(f => (DiagnosticDescriptor)f.GetValue(null)!);
        Assert.Equal(fields.Select(f => f.Id).OrderBy(x => x), all.Select(d => d.Id).OrderBy(x => x));
    }

    [Fact]
    public void Release_tracking_lists_every_descriptor_with_its_category_and_severity()
    {
        string dir = Path.Combine(RepositoryRoot(), "generator");
        var rows = File.ReadAllLines(Path.Combine(dir, "AnalyzerReleases.Shipped.md"))
            .Concat(File.ReadAllLines(Path.Combine(dir, "AnalyzerReleases.Unshipped.md")))
            .Where(l => l.StartsWith("COL", StringComparison.Ordinal))
            .Select(l => l.Split('|').Select(c => c.Trim()).ToArray())
            .ToList();
        Assert.Equal(DiagnosticDescriptors.ById.Keys.OrderBy(x => x), rows.Select(r => r[0]).OrderBy(x => x));
        foreach (var r in rows)
        {
            var d = DiagnosticDescriptors.ById[r[0]];
            Assert.Equal(d.Category, r[1]);
            Assert.Equal(d.DefaultSeverity.ToString(), r[2]);
        }
    }

    [Fact]
    public void Diagnostics_doc_has_an_anchor_and_row_for_every_descriptor()
    {
        string doc = File.ReadAllText(Path.Combine(RepositoryRoot(), "README.md"));
        foreach (var d in DiagnosticDescriptors.ById.Values)
        {
            Assert.Contains("<a id=\"diagnostics-" + d.Id.ToLowerInvariant() + "\"></a>", doc);
            Assert.Matches(new Regex(@"^\|[^|\n]*" + d.Id + @"[^|\n]*\|\s*" + d.DefaultSeverity + @"\s*\|", RegexOptions.Multiline), doc);
        }
    }

    internal static string RepositoryRoot([CallerFilePath] string path = "")
        => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, "..", ".."));
}

/// <summary>COL999: an exception inside the generator becomes one diagnostic carrying its message, never CS8785.</summary>
public class InternalErrorTests
{
    private const string Source = """
        using Collins;
        namespace App;

        [SketchedOptimizer(Ratio = 4)]
        public partial class [|FaultyModel7f3a|]
        {
            [Tensor(64, 64)] public float[] W = new float[4096];
        }

        [SketchedOptimizer(Ratio = 4)]
        public partial class Healthy
        {
            [Tensor(64, 64)] public float[] W = new float[4096];
        }
        """;

    private static GeneratorRun RunWithFault(string stage)
    {
        // The hook belongs to this one generator instance (the internal constructor), so no other test can see it.
        var generator = new SketchedOptimizerGenerator(
            key => key == stage + ":FaultyModel7f3a" ? new InvalidOperationException("injected fault 42") : null);
        var driver = GeneratorDriverHelper.CreateDriver(generator: generator);
        return GeneratorDriverHelper.Run(GeneratorDriverHelper.CreateCompilation(Markup.Parse(Source).Source), driver);
    }

    private static void AssertOneInternalError(GeneratorRun run, string message)
    {
        Assert.Null(run.Generator.Exception);
        Assert.DoesNotContain(run.Output.GetDiagnostics().Concat(run.GeneratorDiagnostics), d => d.Id is "CS8784" or "CS8785");
        var d = Assert.Single(run.GeneratorDiagnostics);
        Assert.Equal("COL999", d.Id);
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.Equal(message, d.GetMessage(CultureInfo.InvariantCulture));
        // The healthy class is still generated; nothing of the faulty one is.
        Assert.Equal(new[] { "App.Healthy.g.cs" }, run.Generator.GeneratedSources.Select(s => s.HintName));
    }

    [Fact]
    public void Exception_in_the_transform_becomes_COL999_at_the_class()
    {
        var run = RunWithFault("transform");
        AssertOneInternalError(run, "The Collins generator failed unexpectedly and generated nothing for this class: InvalidOperationException: injected fault 42");
        // Reported at the class declaration (the whole declaration, attributes included).
        var tree = run.Input.SyntaxTrees.Single();
        var declaration = tree.GetRoot().DescendantNodes().OfType<Microsoft.CodeAnalysis.CSharp.Syntax.ClassDeclarationSyntax>().First();
        Assert.Equal(declaration.Span, run.GeneratorDiagnostics[0].Location.SourceSpan);
    }

    [Fact]
    public void Exception_in_the_emitter_becomes_COL999()
        => AssertOneInternalError(RunWithFault("emit"),
            "The Collins generator failed unexpectedly and generated nothing for this class: emitting 'App.FaultyModel7f3a': InvalidOperationException: injected fault 42");
}
