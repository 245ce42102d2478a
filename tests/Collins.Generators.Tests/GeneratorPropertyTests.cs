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
/// The generator never fails, whatever it is given, and reports a COL error exactly when the declaration is wrong.
/// 10,000 declarations are drawn from pools of values each tagged <see cref="Tag.Sane"/> (always accepted),
/// <see cref="Tag.Hostile"/> (always a COL error: NaN, ±∞, negative numbers, bad or clashing names, non-partial and
/// generic classes, non-float[] members, initialisers of the wrong constant length, …) or <see cref="Tag.Unknown"/>
/// (values whose verdict depends on the rest of the declaration, or that are compiler errors, e.g. a huge ratio, an
/// undefined enum value, a wrong argument type); a third of them are then mutated by inserting or deleting garbage tokens.
/// For every case: no exception escapes (RunResult.Exception is null, no CS8784/CS8785/AD0001, no COL999 internal error).
/// For every unmutated case: a COL error is reported exactly when a hostile value is present (unless an unknown one is
/// too): with only sane values there is none and code is generated, with a hostile one there is one and nothing is
/// generated; a COL019 warning is reported exactly when the case includes a [Tensor] class without [SketchedOptimizer].
/// <para>
/// Reproducible: case i is drawn from <c>new PCG(0, BaseSeed + i)</c>, whatever the thread count; a failure names the
/// case's index and source, and <c>COLLINS_PROPERTY_CASE=i</c> runs that case alone.
/// </para>
/// <para>
/// Speed: every case reuses one base compilation (its metadata references are bound once) and only adds the case's syntax
/// tree. Running the generator binds just the annotated classes; a full compilation of the output (binding the generated
/// code) costs far more (~65 ms each on the 2-core dev box), so it is done for every case that generated code and for a
/// sampled 1 in 25 of the others. On those: the generated files have no errors of their own (unless the user's code
/// already has errors that they inherit), an all-sane case compiles with no error at all, and otherwise the output
/// compiles cleanly or a COL error or an ordinary compiler error in the user's code explains why.
/// Shapes are kept small (dimensions ≤ 16, at most 3) so that emitted code stays small.
/// </para>
/// </summary>
public class GeneratorPropertyTests(ITestOutputHelper output)
{
    private const int Cases = 10_000;
    private const ulong BaseSeed = 0x5EED_C011_1A50_0017UL;

    /// <summary>Ordered so that combining is <c>max</c>: any unknown value makes the verdict unknown, else any hostile one makes it hostile.</summary>
    public enum Tag { Sane = 0, Hostile = 1, Unknown = 2 }

    private static Tag Max(Tag a, Tag b) => a > b ? a : b;
    private static Tag Max(IEnumerable<Tag> tags) => tags.Aggregate(Tag.Sane, Max);

    /// <summary>A piece of source and its verdict.</summary>
    public readonly record struct V(string Text, Tag Tag);

    private static Gen<V> Pool(Tag tag, params string[] texts) => Gen.OneOf(texts).Select(t => new V(t, tag));

    /// <summary>Mostly sane values (so that a fair share of cases generate code), sometimes others.</summary>
    private static Gen<V> Mostly(Gen<V> sane, Gen<V> other) => Gen.Frequency((4, sane), (1, other));

    private static readonly string[] SettingNames = { "Name", "Ratio", "Beta1", "Beta2", "Epsilon", "WeightDecay", "Layout", "SecondMoment", "Seed", "DenseThreshold" };

    private static readonly Gen<V> Integer = Gen.OneOf(
        Pool(Tag.Sane, "1", "2", "3", "4", "7", "8", "16", "32", "64", "1000"), // ratio 1000: rows ≤ 1000 ≤ 1024 (COL017) for any tensor
        Pool(Tag.Hostile, "0", "-1", "-7", "int.MinValue"),
        Pool(Tag.Unknown, "1025", "int.MaxValue", "2147483646", "0x7FFFFFFF", "1 << 20", "(int)1e9"));

    /// <summary>A real literal and its value (as the compiler reads it), tagged by the setting's own rule.</summary>
    private static readonly Gen<(string Text, double Value)> Real = Gen.Frequency(
        (3, Gen.Double[-2, 2].Select(d => (d.ToString("R", CultureInfo.InvariantCulture), d))),
        (2, Gen.OneOf(
            ("double.NaN", double.NaN), ("double.PositiveInfinity", double.PositiveInfinity), ("double.NegativeInfinity", double.NegativeInfinity),
            ("double.Epsilon", double.Epsilon), ("double.MaxValue", double.MaxValue), ("-double.MaxValue", -double.MaxValue), ("1e308", 1e308),
            ("-1e308", -1e308), ("1e-300", 1e-300), ("-0.0", -0.0), ("0", 0), ("0.9", 0.9), ("0.999", 0.999), ("1", 1), ("1.0", 1), ("1e-8", 1e-8),
            ("0.5f", 0.5), ("float.NaN", double.NaN), ("-1e-8", -1e-8), ("0.99999999999999999", 1), ("1e-50", 1e-50))));

    private static bool BetaOk(double d) => d >= 0 && d < 1 && (float)d < 1f;
    private static bool EpsilonOk(double d) => d > 0 && !double.IsInfinity(d) && (float)d > 0f && !float.IsInfinity((float)d);
    private static bool WeightDecayOk(double d) => d >= 0 && !double.IsInfinity(d);

    private static Gen<V> RealSetting(Func<double, bool> ok, Gen<V> sane)
        => Mostly(sane, Real.Select(r => new V(r.Text, ok(r.Value) ? Tag.Sane : Tag.Hostile)));

    private static readonly Gen<V> WrongValue = Pool(Tag.Unknown,
        "\"text\"", "null", "true", "'c'", "1.5m", "new int[0]", "Undefined", "typeof(int)", "default", "1.5", "9999999999", "-9223372036854775808", "SketchLayout.Universal");

    /// <summary>Optimizer names: sane ones, always-rejected ones (COL015) and undecided ones; clashes with tensors are decided per case.</summary>
    private static readonly Gen<V> VariantName = Gen.Frequency(
        (8, Pool(Tag.Sane, "Optimizer", "Fast", "Slow", "V2", "W")),
        (2, Pool(Tag.Hostile, "class", "1a", "a b", "", "__y", "Step", "M", "TensorSpecs", "DefaultSettings")),
        (1, Pool(Tag.Unknown, "Ω", "@int")));

    /// <summary>One named argument of [SketchedOptimizer]: its key, its value, and the optimizer name it sets (for Name).</summary>
    public readonly record struct Setting(string Key, V Value, string? Name);

    private static Gen<Setting> Named(string key, Gen<V> value) => value.Select(v => new Setting(key, new V(key + " = " + v.Text, v.Tag), null));

    private static readonly Gen<Setting> SettingGen = Gen.Frequency(
        (2, Gen.Frequency((12, VariantName.Select(n => new Setting("Name", new V("Name = \"" + n.Text + "\"", n.Tag), n.Text))),
                          (1, Gen.Const(new Setting("Name", new V("Name = null", Tag.Hostile), null))))),
        (3, Named("Ratio", Mostly(Pool(Tag.Sane, "1", "2", "4", "8", "16", "32", "64"), Integer))),
        (2, Named("Beta1", RealSetting(BetaOk, Gen.Double[0, 0.99].Select(d => new V(d.ToString("R", CultureInfo.InvariantCulture), Tag.Sane))))),
        (2, Named("Beta2", RealSetting(BetaOk, Pool(Tag.Sane, "0.9", "0.99", "0.999", "0.0")))),
        (2, Named("Epsilon", RealSetting(EpsilonOk, Pool(Tag.Sane, "1e-8", "1e-6", "0.001", "1E-7")))),
        (2, Named("WeightDecay", RealSetting(WeightDecayOk, Pool(Tag.Sane, "0", "0.01", "0.1", "1e-4")))),
        (1, Named("Layout", Gen.Frequency((4, Pool(Tag.Sane, "SketchLayout.Universal", "SketchLayout.Rotation")), (1, Pool(Tag.Unknown, "(SketchLayout)5", "(SketchLayout)(-1)"))))),
        (1, Named("SecondMoment", Gen.Frequency((4, Pool(Tag.Sane, "SecondMomentEstimate.Mean", "SecondMomentEstimate.Sum")), (1, Pool(Tag.Unknown, "(SecondMomentEstimate)3"))))),
        (1, Named("Seed", Gen.Frequency((3, Integer), (1, Pool(Tag.Sane, "long.MinValue", "long.MaxValue", "-42L", "1L << 40"))).Select(v => v with { Tag = Tag.Sane }))),
        (2, Named("DenseThreshold", Mostly(Pool(Tag.Sane, "0", "16", "64", "4096"), Gen.OneOf(Pool(Tag.Sane, "1000", "int.MaxValue"), Pool(Tag.Hostile, "-1", "-7", "int.MinValue"))))),
        (1, Gen.Select(Gen.OneOf(SettingNames), WrongValue, (n, v) => new Setting(n, new V(n + " = " + v.Text, Tag.Unknown), null))));

    /// <summary>One [SketchedOptimizer(...)] with its verdict and optimizer name; the same key twice is a compiler error (unknown).</summary>
    public readonly record struct AttributeCase(string Text, Tag Tag, string Name);

    private static readonly Gen<AttributeCase> Attribute = Gen.Select(SettingGen.Array[0, 3], Gen.Int[0, 9], (drawn, keepDuplicates) =>
    {
        // Mostly one value per key (a repeated key is a compiler error, CS0643, so the verdict is unknown).
        var settings = keepDuplicates == 0 ? drawn : drawn.GroupBy(x => x.Key).Select(g => g.First()).ToArray();
        var tag = Max(settings.Select(x => x.Value.Tag));
        if (settings.Select(x => x.Key).Distinct().Count() < settings.Length) tag = Tag.Unknown;
        string name = settings.Where(x => x.Key == "Name").Select(x => x.Name ?? "").DefaultIfEmpty("Optimizer").First();
        return new AttributeCase("[SketchedOptimizer(" + string.Join(", ", settings.Select(x => x.Value.Text)) + ")]", tag, name);
    });

    /// <summary>A dimension and its value (0 when not a sane constant).</summary>
    private static readonly Gen<(V Dim, int Value)> Dimension = Gen.Frequency(
        (25, Gen.Int[1, 16].Select(i => (new V(i.ToString(CultureInfo.InvariantCulture), Tag.Sane), i))),
        (1, Gen.OneOf(Pool(Tag.Hostile, "0", "-1", "N", "int.MaxValue"), Pool(Tag.Unknown, "2147483646", "1.5", "\"x\"", "65536", "null")).Select(v => (v, 0))));

    /// <summary>Tensor names: sane, always rejected (COL011 for every layout), undecided; duplicates and XGrad clashes are decided per case.</summary>
    private static readonly Gen<V> TensorName = Gen.Frequency(
        (10, Pool(Tag.Sane, "W", "B", "W1", "Weights", "_x", "x1", "Emb", "WGrad", "Fast", "Optimizer")),
        (3, Pool(Tag.Hostile, "class", "1a", "a b", "", "__y", "Step", "Length", "Index", "Tensors", "Save", "buffers", "plans", "DefaultSettings", "StateBytes")),
        (1, Pool(Tag.Unknown, "A", "Sign", "Rotations", "Apply", "Ω", "@int", "M")));

    /// <summary>A named argument of [Tensor] with its key and, for Name, the tensor name it sets.</summary>
    private static readonly Gen<Setting> TensorArgument = Gen.Frequency(
        (3, TensorName.Select(n => new Setting("Name", new V("Name = \"" + n.Text + "\"", n.Tag), n.Text))),
        (6, Named("Ratio", Mostly(Pool(Tag.Sane, "0", "1", "2", "4", "8", "1000"), Gen.Frequency((3, Pool(Tag.Hostile, "-1", "-7", "int.MinValue")), (1, Pool(Tag.Unknown, "1025", "int.MaxValue")))))),
        (3, Named("Sketching", Gen.Frequency((8, Pool(Tag.Sane, "TensorSketching.Sketched", "TensorSketching.Dense", "TensorSketching.Auto")), (1, Pool(Tag.Unknown, "(TensorSketching)9"))))),
        (1, Gen.Select(Gen.OneOf("Name", "Ratio", "Sketching", "Shape"), WrongValue, (n, v) => new Setting(n, new V(n + " = " + v.Text, Tag.Unknown), null))));

    /// <summary>One [Tensor] member: its source line, verdict, member name and tensor name.</summary>
    public readonly record struct TensorCase(string Text, Tag Tag, string Member, string Name);

    private static readonly Gen<V> MemberType = Gen.Frequency(
        (12, Pool(Tag.Sane, "float[]", "float[]?")),
        (1, Pool(Tag.Hostile, "double[]", "float", "System.Collections.Generic.List<float>", "float[,]", "float[][]", "int[]")));

    private static readonly Gen<TensorCase> Tensor = Gen.Select(
        Gen.Frequency((12, Dimension.Array[1, 3]), (1, Dimension.Array[0, 0])),
        Gen.Select(TensorArgument.Array[0, 2], Gen.Int[0, 9], (drawn, keepDuplicates) => keepDuplicates == 0 ? drawn : drawn.GroupBy(x => x.Key).Select(g => g.First()).ToArray()),
        Gen.Frequency((1, Pool(Tag.Sane, "W", "B", "Weights", "Step", "Length", "DefaultSettings", "Optimizer", "Fast")), (3, Gen.Int[0, 1_000_000].Select(i => new V("P" + i.ToString(CultureInfo.InvariantCulture), Tag.Sane)))),
        Gen.Select(Gen.Frequency((10, Gen.Int[0, 1]), (1, Gen.Const(2))), MemberType, Gen.Frequency((9, Gen.Int[0, 5]), (1, Gen.Int[6, 9]))),
        (dims, named, member, shape) =>
        {
            var (kind, type, initializerKind) = shape;
            var tag = Max(dims.Select(d => d.Dim.Tag).Concat(named.Select(n => n.Value.Tag)).Append(type.Tag));
            if (dims.Length == 0) tag = Max(tag, Tag.Hostile); // COL008: no dimensions
            if (named.Select(n => n.Key).Distinct().Count() < named.Length) tag = Tag.Unknown;
            string name = named.Where(n => n.Key == "Name").Select(n => n.Name ?? "").DefaultIfEmpty(member.Text).First();
            if (!named.Any(n => n.Key == "Name"))
                tag = Max(tag, DefaultNameTag(member.Text));

            // The initialiser (only for float[] members): its constant length against the shape's, when the shape is sane.
            long length = dims.Aggregate(1L, (p, d) => p * d.Value);
            string initializer = "";
            if (type.Tag == Tag.Sane)
            {
                (string Text, Tag Tag) init = initializerKind switch
                {
                    0 => ("null!", Tag.Sane),
                    1 => ("[]", Tag.Sane),
                    2 => ("new float[N]", Tag.Sane),
                    3 or 4 => ($"new float[{length}]", Tag.Sane),
                    5 => ("new float[" + string.Join(" * ", dims.Select(d => d.Dim.Text)) + "]", Tag.Sane),
                    6 => ($"new float[{length + 1}]", Tag.Hostile),
                    7 => ("new float[] { 1f, 2f }", length == 2 ? Tag.Sane : Tag.Hostile),
                    8 => ("new float[N2 * 3]", length == 12 ? Tag.Sane : Tag.Hostile),
                    9 => ("new float[0]", Tag.Hostile),
                    _ => throw new ArgumentOutOfRangeException(nameof(initializerKind)),
                };
                // A shape that is not sane decides the verdict by itself (and a non-constant dimension makes `new float[d1 * d2]` a compiler error).
                if (dims.Length > 0 && dims.All(d => d.Dim.Tag == Tag.Sane)) tag = Max(tag, init.Tag);
                else if (initializerKind == 5) init = ("null!", Tag.Sane);
                initializer = " = " + init.Text;
            }
            else if (type.Text.EndsWith(']') || type.Text.EndsWith('>'))
                initializer = " = null!";
            string args = string.Join(", ", dims.Select(d => d.Dim.Text).Concat(named.Select(n => n.Value.Text)));
            if (kind == 2) tag = Max(tag, Tag.Hostile);   // a write-only property: COL021 (or COL018 when the type is wrong too)
            string text = kind switch
            {
                0 => $"    [Tensor({args})] public {type.Text} {member.Text} {{ get; set; }}{initializer}" + (initializer.Length > 0 ? ";" : ""),
                1 => $"    [Tensor({args})] public {type.Text} {member.Text}{initializer};",
                _ => $"    [Tensor({args})] public {type.Text} {member.Text} {{ set {{ }} }}",
            };
            return new TensorCase(text, tag, member.Text, name);
        });

    /// <summary>The verdict of a member name used as the tensor name.</summary>
    private static Tag DefaultNameTag(string member) => member is "Step" or "Length" or "DefaultSettings" ? Tag.Hostile : Tag.Sane;

    /// <summary>A declaration: source, verdict, and whether it includes a [Tensor] class without [SketchedOptimizer].</summary>
    public readonly record struct DeclarationCase(string Source, Tag Tag, bool Orphan);

    private static readonly Gen<DeclarationCase> Declaration = Gen.Select(
        Gen.Select(Gen.Frequency((4, Attribute.Array[1, 1]), (1, Attribute.Array[2, 2])), Gen.Frequency((12, Tensor.Array[1, 3]), (1, Tensor.Array[0, 0])), Gen.Int[0, 19], Gen.Int[0, 19]),
        Gen.Int[0, 9], Gen.Int[0, 4], Gen.Int[0, 5],
        (parts, containerKind, namespaceKind, orphanKind) =>
        {
            var (attributes, tensors, classKind, partialKind) = parts;
            var tag = Max(attributes.Select(a => a.Tag).Concat(tensors.Select(t => t.Tag)));
            if (partialKind == 0) tag = Max(tag, Tag.Hostile); // COL001
            if (classKind == 0) tag = Max(tag, Tag.Hostile);   // COL003
            if (tensors.Length == 0) tag = Max(tag, Tag.Hostile); // COL012
            if (containerKind == 0 && namespaceKind == 4) tag = Max(tag, Tag.Hostile); // COL002: non-partial container
            if (containerKind == 2) tag = Max(tag, Tag.Hostile); // COL003: nested in a generic type
            // Clashes between the parts of one declaration.
            var names = tensors.Select(t => t.Name).ToList();
            var members = tensors.Select(t => t.Member).ToList();
            if (members.Distinct().Count() < members.Count) tag = Tag.Unknown; // CS0102 besides whatever else
            if (names.Distinct().Count() < names.Count) tag = Max(tag, Tag.Hostile); // COL010
            if (names.Any(n => names.Contains(n + "Grad"))) tag = Max(tag, Tag.Hostile); // COL011: Step parameters clash
            if (attributes.Select(a => a.Name).Distinct().Count() < attributes.Length) tag = Max(tag, Tag.Hostile); // COL014
            if (attributes.Any(a => names.Contains(a.Name) || members.Contains(a.Name))) tag = Max(tag, Tag.Hostile); // COL015

            string declaration = (partialKind == 0 ? "public class M" : "public partial class M") + (classKind == 0 ? "<T>" : "");
            string body = string.Join("\n", attributes.Select(a => a.Text)) + "\n" + declaration + "\n{\n    public const int N2 = 4; public static int N = 3;\n"
                          + string.Join("\n", tensors.Select(t => t.Text)) + "\n}\n";
            bool orphan = orphanKind == 0;
            if (orphan) body += "public class Plain\n{\n    [Tensor(4)] public float[] Q = new float[4];\n}\n";
            if (containerKind == 0 && namespaceKind == 4) body = "public class Outer\n{\n" + body + "}\n";
            else if (containerKind == 1) body = "public static partial class Outer\n{\n" + body + "}\n";
            else if (containerKind == 2) body = "public partial record Outer<U>\n{\n" + body + "}\n";
            string ns = namespaceKind switch { 0 => "", 1 => "namespace App.Deep;\n", _ => "namespace App\n{\n" };
            return new DeclarationCase("using Collins;\n" + ns + body + (namespaceKind >= 2 ? "}\n" : ""), tag, orphan);
        });

    private static readonly Gen<string> Garbage = Gen.OneOf(
        "{", "}", "(", ")", ";", ",", "[", "]", "=", "\"", "/*", "//", "#if X\n", "#endif\n", "@", "0x", "partial", "class", "..", "=>", "\n", "$\"", "'", "<", ">", "?", "!", "1e", "-", "Tensor", "SketchedOptimizer(");

    /// <summary>Applies 1–3 edits: insert a garbage token or delete 1–6 characters, at positions given as fractions of the length.</summary>
    private static readonly Gen<string> Mutated = Gen.Select(Declaration, Gen.Select(Gen.Bool, Gen.Double[0, 1], Gen.Int[1, 6], Garbage).Array[1, 3],
        (declaration, edits) =>
        {
            var sb = new StringBuilder(declaration.Source);
            foreach (var (insert, at, length, token) in edits)
            {
                int position = (int)(at * sb.Length);
                if (insert) sb.Insert(position, token);
                else sb.Remove(position, Math.Min(length, sb.Length - position));
            }
            return sb.ToString();
        });

    /// <summary>A case: the source; for an unmutated declaration its verdict and orphan flag (null when mutated); whether to compile it in full.</summary>
    public readonly record struct Case(string Source, DeclarationCase? Declared, bool FullCompile);

    private static readonly Gen<Case> CaseGen = Gen.Select(
        Gen.Frequency((2, Declaration.Select(d => (d.Source, (DeclarationCase?)d))), (1, Mutated.Select(m => (m, (DeclarationCase?)null)))),
        Gen.Int[0, 24], (c, sample) => new Case(c.Item1, c.Item2, sample == 0));

    /// <summary>Case <paramref name="index"/>, the same on every run and thread.</summary>
    internal static Case Draw(int index) => CaseGen.Generate(new PCG(0, BaseSeed + (ulong)index), null, out _);

    private static readonly CSharpCompilation Base = GeneratorDriverHelper.CreateCompilation();

    [Fact]
    public void Generator_never_fails_and_reports_a_COL_error_exactly_for_hostile_declarations()
    {
        int total = 0, full = 0, withSource = 0, withCol = 0, withCompilerErrors = 0, sane = 0, hostile = 0, unknown = 0, mutated = 0, orphans = 0;
        s_userErrorIds.Clear();
        var watch = Stopwatch.StartNew();
        var indices = Environment.GetEnvironmentVariable("COLLINS_PROPERTY_CASE") is { Length: > 0 } one
            ? new[] { int.Parse(one, CultureInfo.InvariantCulture) }
            : Enumerable.Range(0, Cases).ToArray();
        var failures = new System.Collections.Concurrent.ConcurrentBag<(int Index, string Message)>();
        Parallel.ForEach(indices, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, index =>
        {
            var c = Draw(index);
            try
            {
                var stats = CheckOne(c);
                Interlocked.Increment(ref total);
                if (c.FullCompile || stats.Generated) Interlocked.Increment(ref full);
                if (stats.Generated) Interlocked.Increment(ref withSource);
                if (stats.Col) Interlocked.Increment(ref withCol);
                if (stats.CompilerErrors) Interlocked.Increment(ref withCompilerErrors);
                switch (c.Declared?.Tag)
                {
                    case null: Interlocked.Increment(ref mutated); break;
                    case Tag.Sane: Interlocked.Increment(ref sane); break;
                    case Tag.Hostile: Interlocked.Increment(ref hostile); break;
                    default: Interlocked.Increment(ref unknown); break;
                }
                if (c.Declared?.Orphan == true) Interlocked.Increment(ref orphans);
            }
            catch (Exception ex)
            {
                failures.Add((index, ex.Message));
            }
        });
        watch.Stop();
        if (!failures.IsEmpty)
        {
            var first = failures.OrderBy(f => f.Index).First();
            var c = Draw(first.Index);
            Assert.Fail($"{failures.Count} case(s) failed; the first is case {first.Index} (seed {BaseSeed:X} + {first.Index}; rerun it alone with "
                        + $"COLLINS_PROPERTY_CASE={first.Index}), verdict {c.Declared?.Tag.ToString() ?? "mutated"}:\n{first.Message}\n--- source ---\n{c.Source}");
        }
        output.WriteLine($"{total} cases in {watch.Elapsed.TotalSeconds:F1} s: {sane} sane, {hostile} hostile, {unknown} undecided, {mutated} mutated "
                         + $"({orphans} with an orphan [Tensor]); {full} fully compiled, {withSource} generated code, "
                         + $"{withCol} reported a COL error, {withCompilerErrors} (of the fully compiled) had compiler errors in user code; most frequent: "
                         + string.Join(", ", s_userErrorIds.OrderByDescending(kv => kv.Value).Take(10).Select(kv => kv.Key + " ×" + kv.Value)));
        if (indices.Length == 1) return;
        Assert.True(total >= Cases, "cases run: " + total);
        // The pools must reach every side of the property, or the test proves little.
        Assert.True(sane > Cases / 20, "too few all-sane declarations: " + sane);
        Assert.True(hostile > Cases / 10, "too few hostile declarations: " + hostile);
        Assert.True(withSource > Cases / 20, "too few cases generated code: " + withSource);
        Assert.True(withCol > Cases / 5, "too few cases reported a COL diagnostic: " + withCol);
        Assert.True(full > Cases / 50, "too few cases fully compiled: " + full);
        Assert.True(orphans > Cases / 20, "too few cases with an orphan [Tensor]: " + orphans);
    }

    [Fact]
    public void Cases_are_the_same_on_every_draw()
    {
        for (int i = 0; i < 50; i++) Assert.Equal(Draw(i), Draw(i));
        Assert.NotEqual(Draw(0).Source, Draw(1).Source);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> s_userErrorIds = new();

    private static (bool Generated, bool Col, bool CompilerErrors) CheckOne(Case c)
    {
        var tree = GeneratorDriverHelper.Parse(c.Source);
        var compilation = Base.AddSyntaxTrees(tree);
        var driver = GeneratorDriverHelper.CreateDriver().RunGeneratorsAndUpdateCompilation(compilation, out var updated, out var driverDiagnostics);
        var result = driver.GetRunResult().Results.Single();

        Assert.True(result.Exception is null, "generator threw: " + result.Exception);
        var failures = driverDiagnostics.Concat(result.Diagnostics).Where(d => d.Id is "CS8784" or "CS8785" or "AD0001" or "COL999").ToList();
        Assert.True(failures.Count == 0, "generator failure: " + string.Join("\n", failures));

        bool generated = result.GeneratedSources.Length > 0;
        var colErrors = result.Diagnostics.Where(d => d.Id.StartsWith("COL", StringComparison.Ordinal) && d.Severity == DiagnosticSeverity.Error).ToList();
        bool col = colErrors.Count > 0;
        if (c.Declared is { } declared)
        {
            string reported = "reported: " + (result.Diagnostics.Length == 0 ? "nothing" : string.Join("; ", result.Diagnostics));
            if (declared.Tag == Tag.Sane)
            {
                Assert.True(!col, "an all-sane declaration got a COL error; " + reported);
                Assert.True(generated, "an all-sane declaration generated nothing; " + reported);
            }
            else if (declared.Tag == Tag.Hostile)
            {
                Assert.True(col, "a hostile declaration got no COL error; " + reported);
                Assert.True(!generated, "a hostile declaration (a class with an error) still generated code");
            }
            int col019 = result.Diagnostics.Count(d => d.Id == "COL019");
            Assert.True(col019 == (declared.Orphan ? 1 : 0), $"expected {(declared.Orphan ? 1 : 0)} COL019 warning(s), got {col019}; " + reported);
        }
        // Every case that generated code is compiled in full, and every all-sane one; of the rest (no source: a COL error
        // or no annotated class left after mutation), a sampled 1 in 25 is compiled too.
        bool allSane = c.Declared?.Tag == Tag.Sane;
        if (!c.FullCompile && !generated && !allSane) return (generated, col, false);

        var generatedTrees = result.GeneratedSources.Select(s => s.SyntaxTree).ToHashSet();
        var errors = updated.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error).ToList();
        var inGenerated = errors.Where(e => e.Location.SourceTree is { } t && generatedTrees.Contains(t)).ToList();
        bool userErrors = errors.Count > inGenerated.Count;
        foreach (var id in errors.Except(inGenerated).Select(e => e.Id).Distinct()) s_userErrorIds.AddOrUpdate(id, 1, (_, n) => n + 1);
        if (allSane)
            Assert.True(errors.Count == 0, "an all-sane declaration does not compile:\n" + string.Join("\n", errors.Take(5)));
        if (!userErrors)
            Assert.True(inGenerated.Count == 0, "generated code does not compile:\n" + string.Join("\n", inGenerated.Take(5)));
        Assert.True(errors.Count == 0 || col || userErrors, "errors without an explanation");
        return (generated, col, userErrors);
    }
}
