using System.Diagnostics;
using System.Globalization;
using System.Text;
using Collins.Generators.Tests.Infrastructure;
using CsCheck;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Xunit.Abstractions;

namespace Collins.Generators.Tests;

/// <summary>
/// The generator never fails, whatever it is given. CsCheck generates 10,000 declarations from pools of hostile values
/// (NaN, ±∞, negative and huge numbers, wrong types, undefined enum values, missing or duplicate arguments, bad names,
/// non-partial and generic classes) and mutates a third of them by inserting or deleting garbage tokens. For every case:
/// no exception escapes (RunResult.Exception is null, no CS8784/CS8785/AD0001, no COL999 internal error).
/// <para>
/// Speed: every case reuses one base compilation (its metadata references are bound once) and only adds the case's syntax
/// tree. Running the generator binds just the annotated classes; a full compilation of the output (binding the generated
/// code) costs far more (~65 ms each on the 2-core dev box), so it is done for every case that generated code (~18 % of
/// the cases) and for a sampled 1 in 25 of the others (chosen by the generator). On those:
/// the generated files have no errors of their own (unless the user's code already has errors that they inherit), and the
/// output compiles cleanly or a COL error or an ordinary compiler error in the user's code explains why.
/// Shapes are kept small (dimensions ≤ 16, at most 3) so that emitted code stays small.
/// </para>
/// </summary>
public class GeneratorPropertyTests(ITestOutputHelper output)
{
    private const int Cases = 10_000;

    private static readonly string[] SettingNames = { "Name", "Ratio", "Beta1", "Beta2", "Epsilon", "WeightDecay", "Layout", "SecondMoment", "Seed", "DenseThreshold" };

    private static readonly Gen<string> Integer = Gen.OneOf(
        "0", "1", "2", "3", "4", "7", "8", "16", "32", "64", "-1", "-7", "1000", "1025", "int.MaxValue", "int.MinValue", "2147483646", "0x7FFFFFFF", "1 << 20", "(int)1e9");

    private static readonly Gen<string> Real = Gen.Frequency(
        (3, Gen.Double[-2, 2].Select(d => d.ToString("R", CultureInfo.InvariantCulture))),
        (2, Gen.OneOf("double.NaN", "double.PositiveInfinity", "double.NegativeInfinity", "double.Epsilon", "double.MaxValue", "-double.MaxValue",
                      "1e308", "-1e308", "1e-300", "-0.0", "0", "0.9", "0.999", "1", "1.0", "1e-8", "0.5f", "float.NaN", "-1e-8", "0.99999999999999999")));

    private static readonly Gen<string> WrongValue = Gen.OneOf(
        "\"text\"", "null", "true", "'c'", "1.5m", "new int[0]", "Undefined", "typeof(int)", "default", "1.5", "9999999999", "-9223372036854775808", "SketchLayout.Universal");

    private static readonly Gen<string> Identifier = Gen.OneOf(
        "W", "B", "W1", "Weights", "_x", "x1", "Step", "Optimizer", "Fast", "class", "1a", "a b", "", "__y", "WGrad", "M", "Ω", "@int", "Length", "Tensors", "Index", "A", "Sign", "Rotations", "finite", "m", "plans", "Apply");

    /// <summary>Mostly sane values (so that a fair share of cases generate code), sometimes hostile ones.</summary>
    private static Gen<string> Mostly(Gen<string> sane, Gen<string> hostile) => Gen.Frequency((4, sane), (1, hostile));

    private static readonly Gen<string> Setting = Gen.Frequency(
        (2, Mostly(Gen.OneOf("Optimizer", "Fast", "Slow", "V2"), Identifier).Select(n => "Name = \"" + n + "\"")),
        (3, Mostly(Gen.OneOf("1", "2", "4", "8", "16", "32", "64"), Integer).Select(v => "Ratio = " + v)),
        (2, Mostly(Gen.Double[0, 0.99].Select(d => d.ToString("R", CultureInfo.InvariantCulture)), Real).Select(v => "Beta1 = " + v)),
        (2, Mostly(Gen.OneOf("0.9", "0.99", "0.999", "0.0"), Real).Select(v => "Beta2 = " + v)),
        (2, Mostly(Gen.OneOf("1e-8", "1e-6", "0.001", "1E-7"), Real).Select(v => "Epsilon = " + v)),
        (2, Mostly(Gen.OneOf("0", "0.01", "0.1", "1e-4"), Real).Select(v => "WeightDecay = " + v)),
        (1, Gen.OneOf("SketchLayout.Universal", "SketchLayout.Rotation", "SketchLayout.Universal", "(SketchLayout)5", "(SketchLayout)(-1)").Select(v => "Layout = " + v)),
        (1, Gen.OneOf("SecondMomentEstimate.Mean", "SecondMomentEstimate.Sum", "SecondMomentEstimate.Mean", "(SecondMomentEstimate)3").Select(v => "SecondMoment = " + v)),
        (1, Gen.Frequency((3, Integer), (1, Gen.OneOf("long.MinValue", "long.MaxValue", "-42L", "1L << 40"))).Select(v => "Seed = " + v)),
        (2, Mostly(Gen.OneOf("0", "16", "64", "4096"), Integer).Select(v => "DenseThreshold = " + v)),
        (1, Gen.Select(Gen.OneOf(SettingNames), WrongValue, (n, v) => n + " = " + v)));

    private static readonly Gen<string> Attribute = Setting.Array[0, 3].Select(a => "[SketchedOptimizer(" + string.Join(", ", a) + ")]");

    private static readonly Gen<string> Dimension = Gen.Frequency(
        (25, Gen.Int[1, 16].Select(i => i.ToString(CultureInfo.InvariantCulture))),
        (1, Gen.OneOf("0", "-1", "N", "int.MaxValue", "2147483646", "1.5", "\"x\"", "65536", "null")));

    private static readonly Gen<string> TensorArgument = Gen.Frequency(
        (1, Identifier.Select(n => "Name = \"" + n + "\"")),
        (2, Mostly(Gen.OneOf("0", "1", "2", "4", "8"), Integer).Select(v => "Ratio = " + v)),
        (1, Gen.OneOf("TensorSketching.Sketched", "TensorSketching.Dense", "TensorSketching.Auto", "(TensorSketching)9").Select(v => "Sketching = " + v)),
        (1, Gen.Select(Gen.OneOf("Name", "Ratio", "Sketching", "Shape"), WrongValue, (n, v) => n + " = " + v)));

    private static readonly Gen<string> Tensor = Gen.Select(Gen.Frequency((12, Dimension.Array[1, 3]), (1, Dimension.Array[0, 0])), TensorArgument.Array[0, 2],
        Gen.Frequency((1, Identifier), (3, Gen.Int[0, 1_000_000].Select(i => "P" + i.ToString(CultureInfo.InvariantCulture)))), Gen.Int[0, 3],
        (dims, named, member, kind) =>
        {
            string args = string.Join(", ", dims.Concat(named));
            string name = member.Length == 0 || member.Contains(' ') || member == "class" || member == "1a" ? "T" + kind : member;
            return kind == 0
                ? $"    [Tensor({args})] public float[] {name} {{ get; set; }} = null!;"
                : $"    [Tensor({args})] public float[] {name} = null!;";
        });

    private static readonly Gen<string> Declaration = Gen.Select(
        Gen.Select(Gen.Frequency((4, Attribute.Array[1, 1]), (1, Attribute.Array[2, 2])), Gen.Frequency((12, Tensor.Array[1, 4]), (1, Tensor.Array[0, 0])), Gen.Int[0, 19], Gen.Int[0, 19]),
        Gen.Int[0, 9], Gen.Int[0, 4],
        (parts, containerKind, namespaceKind) =>
        {
            var (attributes, tensors, classKind, partialKind) = parts;
            string declaration = (partialKind == 0 ? "public class M" : "public partial class M") + (classKind == 0 ? "<T>" : "");
            string body = string.Join("\n", attributes) + "\n" + declaration + "\n{\n    public const int N2 = 4; public static int N = 3;\n"
                          + string.Join("\n", tensors) + "\n}\n";
            if (containerKind == 0 && namespaceKind == 4) body = "public class Outer\n{\n" + body + "}\n";
            else if (containerKind == 1) body = "public static partial class Outer\n{\n" + body + "}\n";
            else if (containerKind == 2) body = "public partial record Outer<U>\n{\n" + body + "}\n";
            string ns = namespaceKind switch { 0 => "", 1 => "namespace App.Deep;\n", _ => "namespace App\n{\n" };
            return "using Collins;\n" + ns + body + (namespaceKind >= 2 ? "}\n" : "");
        });

    private static readonly Gen<string> Garbage = Gen.OneOf(
        "{", "}", "(", ")", ";", ",", "[", "]", "=", "\"", "/*", "//", "#if X\n", "#endif\n", "@", "0x", "partial", "class", "..", "=>", "\n", "$\"", "'", "<", ">", "?", "!", "1e", "-", "Tensor", "SketchedOptimizer(");

    /// <summary>Applies 1–3 edits: insert a garbage token or delete 1–6 characters, at positions given as fractions of the length.</summary>
    private static readonly Gen<string> Mutated = Gen.Select(Declaration, Gen.Select(Gen.Bool, Gen.Double[0, 1], Gen.Int[1, 6], Garbage).Array[1, 3],
        (source, edits) =>
        {
            var sb = new StringBuilder(source);
            foreach (var (insert, at, length, token) in edits)
            {
                int position = (int)(at * sb.Length);
                if (insert) sb.Insert(position, token);
                else sb.Remove(position, Math.Min(length, sb.Length - position));
            }
            return sb.ToString();
        });

    private static readonly Gen<(string Source, bool FullCompile)> Case = Gen.Select(
        Gen.Frequency((2, Declaration), (1, Mutated)), Gen.Int[0, 24], (source, sample) => (source, sample == 0));

    private static readonly CSharpCompilation Base = GeneratorDriverHelper.CreateCompilation();

    [Fact]
    public void Generator_never_fails_on_ten_thousand_generated_or_mutated_declarations()
    {
        int total = 0, full = 0, withSource = 0, withCol = 0, withCompilerErrors = 0;
        s_userErrorIds.Clear();
        var watch = Stopwatch.StartNew();
        Case.Sample(c =>
        {
            var stats = CheckOne(c.Source, c.FullCompile);
            Interlocked.Increment(ref total);
            if (c.FullCompile || stats.Generated) Interlocked.Increment(ref full);
            if (stats.Generated) Interlocked.Increment(ref withSource);
            if (stats.Col) Interlocked.Increment(ref withCol);
            if (stats.CompilerErrors) Interlocked.Increment(ref withCompilerErrors);
        }, iter: Cases, print: c => "\n" + c.Source);
        watch.Stop();
        output.WriteLine($"{total} cases in {watch.Elapsed.TotalSeconds:F1} s: {full} fully compiled, {withSource} generated code, "
                         + $"{withCol} reported a COL error, {withCompilerErrors} (of the fully compiled) had compiler errors in user code; most frequent: "
                         + string.Join(", ", s_userErrorIds.OrderByDescending(kv => kv.Value).Take(10).Select(kv => kv.Key + " ×" + kv.Value)));
        Assert.True(total >= Cases, "cases run: " + total);
        // The pools must reach both sides of the property, or the test proves little.
        Assert.True(withSource > Cases / 20, "too few cases generated code: " + withSource);
        Assert.True(withCol > Cases / 5, "too few cases reported a COL diagnostic: " + withCol);
        Assert.True(full > Cases / 50, "too few cases fully compiled: " + full);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> s_userErrorIds = new();

    private static (bool Generated, bool Col, bool CompilerErrors) CheckOne(string source, bool fullCompile)
    {
        var tree = GeneratorDriverHelper.Parse(source);
        var compilation = Base.AddSyntaxTrees(tree);
        var driver = GeneratorDriverHelper.CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out var updated, out var driverDiagnostics);
        var result = driver.GetRunResult().Results.Single();

        Assert.True(result.Exception is null, "generator threw: " + result.Exception);
        var failures = driverDiagnostics.Concat(result.Diagnostics).Where(d => d.Id is "CS8784" or "CS8785" or "AD0001" or "COL999").ToList();
        Assert.True(failures.Count == 0, "generator failure: " + string.Join("\n", failures));

        bool generated = result.GeneratedSources.Length > 0;
        bool col = result.Diagnostics.Any(d => d.Id.StartsWith("COL", StringComparison.Ordinal) && d.Severity == DiagnosticSeverity.Error);
        // Every case that generated code is compiled in full; of the rest (no source: a COL error or no annotated
        // class left after mutation), a sampled 1 in 25 is compiled too.
        if (!fullCompile && !generated) return (generated, col, false);

        var generatedTrees = result.GeneratedSources.Select(s => s.SyntaxTree).ToHashSet();
        var errors = updated.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        var inGenerated = errors.Where(e => e.Location.SourceTree is { } t && generatedTrees.Contains(t)).ToList();
        bool userErrors = errors.Count > inGenerated.Count;
        foreach (var id in errors.Except(inGenerated).Select(e => e.Id).Distinct()) s_userErrorIds.AddOrUpdate(id, 1, (_, n) => n + 1);
        if (!userErrors)
            Assert.True(inGenerated.Count == 0, "generated code does not compile:\n" + string.Join("\n", inGenerated.Take(5)));
        Assert.True(errors.Count == 0 || col || userErrors, "errors without an explanation");
        return (generated, col, userErrors);
    }
}
