using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.Text;

namespace Collins.Generators.Tests.Infrastructure;

/// <summary>The outcome of one generator run: the driver (to run again incrementally), its result and both compilations.</summary>
internal sealed record GeneratorRun(GeneratorDriver Driver, GeneratorDriverRunResult Result, Compilation Input, Compilation Output)
{
    /// <summary>The single generator's result.</summary>
    public GeneratorRunResult Generator => Result.Results.Single();

    /// <summary>Diagnostics the generator reported.</summary>
    public ImmutableArray<Diagnostic> GeneratorDiagnostics => Generator.Diagnostics;

    /// <summary>The generated files by hint name.</summary>
    public IReadOnlyDictionary<string, string> Sources
        => Generator.GeneratedSources.ToDictionary(s => s.HintName, s => s.SourceText.ToString(), StringComparer.Ordinal);

    /// <summary>Errors of the output compilation located in generated files (there must never be any).</summary>
    public IReadOnlyList<Diagnostic> ErrorsInGeneratedCode()
    {
        var generated = Generator.GeneratedSources.Select(s => s.SyntaxTree).ToHashSet();
        return Output.GetDiagnostics()
            .Where(d => d.Severity == DiagnosticSeverity.Error && d.Location.SourceTree is { } t && generated.Contains(t))
            .ToList();
    }

    /// <summary>Every error of the output compilation plus the generator's own diagnostics, for failure messages.</summary>
    public string Describe(int max = 20)
        => string.Join("\n", GeneratorDiagnostics.Concat(Output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error))
                                                 .Take(max).Select(d => d.ToString()));
}

/// <summary>
/// Runs <see cref="SketchedOptimizerGenerator"/> in-process. The metadata references (framework, Collins, ILGPU) are built
/// once per test run and shared, so a run costs only parsing, binding and generation.
/// </summary>
internal static class GeneratorDriverHelper
{
    public static readonly CSharpParseOptions ParseOptions = new(LanguageVersion.Latest);

    public static readonly CSharpCompilationOptions CompilationOptions = new(
        OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable, allowUnsafe: true);

    private static readonly Lazy<ImmutableArray<MetadataReference>> s_references = new(LoadReferences);

    public static ImmutableArray<MetadataReference> References => s_references.Value;

    private static ImmutableArray<MetadataReference> LoadReferences()
    {
        // The framework itself, plus the runtime library and what its public surface exposes (ILGPU).
        string frameworkDir = Path.GetDirectoryName(typeof(object).Assembly.Location)!;
        var paths = ((string)AppContext.GetData("TRUSTED_PLATFORM_ASSEMBLIES")!).Split(Path.PathSeparator)
            .Where(p => string.Equals(Path.GetDirectoryName(p), frameworkDir, StringComparison.Ordinal))
            .ToList();
        paths.Add(typeof(Collins.SketchedOptimizerAttribute).Assembly.Location);
        paths.Add(typeof(ILGPU.Index1D).Assembly.Location);
        return paths.Distinct(StringComparer.Ordinal).Select(p => (MetadataReference)MetadataReference.CreateFromFile(p)).ToImmutableArray();
    }

    public static SyntaxTree Parse(string source, string path = "Model.cs")
        => CSharpSyntaxTree.ParseText(SourceText.From(source, System.Text.Encoding.UTF8), ParseOptions, path);

    /// <summary>A compilation of the given sources; file i is named <c>Model{i}.cs</c> (<c>Model.cs</c> when there is one).</summary>
    public static CSharpCompilation CreateCompilation(params string[] sources)
        => CSharpCompilation.Create("UserModels",
            sources.Select((s, i) => Parse(s, sources.Length == 1 ? "Model.cs" : "Model" + i + ".cs")),
            References, CompilationOptions);

    /// <summary>A driver of <paramref name="generator"/> (the shipped one, created as the compiler does, when null).</summary>
    public static GeneratorDriver CreateDriver(bool trackSteps = false, IncrementalGeneratorOutputKind disabledOutputs = IncrementalGeneratorOutputKind.None,
                                               SketchedOptimizerGenerator? generator = null)
        => CSharpGeneratorDriver.Create(
            new[] { (generator ?? new SketchedOptimizerGenerator()).AsSourceGenerator() },
            parseOptions: ParseOptions,
            driverOptions: new GeneratorDriverOptions(disabledOutputs, trackIncrementalGeneratorSteps: trackSteps));

    /// <summary>Runs the generator once over <paramref name="sources"/>.</summary>
    public static GeneratorRun Run(params string[] sources) => Run(CreateCompilation(sources));

    /// <summary>Runs <paramref name="driver"/> (a fresh one when null) over <paramref name="compilation"/>.</summary>
    public static GeneratorRun Run(Compilation compilation, GeneratorDriver? driver = null, bool trackSteps = false)
    {
        driver ??= CreateDriver(trackSteps);
        driver = driver.RunGeneratorsAndUpdateCompilation(compilation, out var output, out _);
        return new GeneratorRun(driver, driver.GetRunResult(), compilation, output);
    }
}
