using System.Diagnostics;
using System.Text;
using Collins.Generators.Tests.Infrastructure;
using Microsoft.CodeAnalysis.Text;
using Xunit.Abstractions;

namespace Collins.Generators.Tests;

/// <summary>
/// A fact that only reports (it verifies nothing a product change could break): skipped unless the environment variable
/// <c>COLLINS_REPORTS=1</c> is set, so that it stays out of the default run's count of verifying tests. Run it with
/// <c>COLLINS_REPORTS=1 dotnet test -c Release tests/Collins.Generators.Tests --filter Category=Report --logger "console;verbosity=detailed"</c>.
/// </summary>
public sealed class ReportFactAttribute : FactAttribute
{
    public const string Variable = "COLLINS_REPORTS";

    public ReportFactAttribute()
    {
        if (Environment.GetEnvironmentVariable(Variable) != "1")
            Skip = "Report only (measures and prints, asserts nothing about time): set " + Variable + "=1 to run it, e.g. with --filter Category=Report";
    }
}

/// <summary>
/// Measures (and only reports, never asserts on time) how long the generator takes for a model with 200 tensors:
/// a cold first run, warm full runs, and an incremental run after an edit that does not touch the model.
/// </summary>
[Trait("Category", "Report")]
public class GeneratorSpeedTests(ITestOutputHelper output)
{
    private static string Model200()
    {
        var sb = new StringBuilder("using Collins;\nnamespace Speed;\n\n[SketchedOptimizer(Ratio = 32)]\n[SketchedOptimizer(Name = \"Universal\", Layout = SketchLayout.Universal, Ratio = 16)]\npublic partial class Big\n{\n");
        for (int i = 0; i < 200; i++)
        {
            // A mix like a 50-layer transformer: square and rectangular matrices (sketched) and vectors (dense).
            string shape = (i % 4) switch { 0 => "256, 256", 1 => "1024, 256", 2 => "256, 1024", _ => "256" };
            sb.Append("    [Tensor(").Append(shape).Append(")] public float[] T").Append(i).Append(" = null!;\n");
        }
        return sb.Append("}\n").ToString();
    }

    [ReportFact]
    public void Generation_time_for_a_model_with_200_tensors()
    {
        var compilation = GeneratorDriverHelper.CreateCompilation(Model200(), "namespace Speed; public class Other { }");

        var watch = Stopwatch.StartNew();
        var cold = GeneratorDriverHelper.Run(compilation);
        double coldMs = watch.Elapsed.TotalMilliseconds;
        Assert.Empty(cold.GeneratorDiagnostics);
        long chars = cold.Sources.Values.Sum(s => (long)s.Length);
        int lines = cold.Sources.Values.Sum(s => s.Count(c => c == '\n'));

        const int runs = 10;
        var times = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            watch.Restart();
            var run = GeneratorDriverHelper.Run(compilation);
            times.Add(watch.Elapsed.TotalMilliseconds);
            Assert.Equal(2, run.Generator.GeneratedSources.Length);
        }
        times.Sort();

        // Incremental: edit the other file; the model's outputs are cached.
        var driver = cold.Driver;
        var other = compilation.SyntaxTrees.Single(t => t.FilePath == "Model1.cs");
        var incremental = new List<double>();
        for (int i = 0; i < runs; i++)
        {
            var edited = compilation.ReplaceSyntaxTree(other, other.WithChangedText(SourceText.From("namespace Speed; public class Other { int x" + i + "; }")));
            watch.Restart();
            driver = driver.RunGenerators(edited);
            incremental.Add(watch.Elapsed.TotalMilliseconds);
        }
        incremental.Sort();

        output.WriteLine($"200 tensors × 2 variants: {cold.Sources.Count} files, {lines} lines, {chars / 1024} KiB of source.");
        output.WriteLine($"cold first run (JIT included): {coldMs:F0} ms");
        output.WriteLine($"warm full run (fresh driver), median of {runs}: {times[runs / 2]:F1} ms (min {times[0]:F1}, max {times[^1]:F1})");
        output.WriteLine($"incremental run after an unrelated edit, median of {runs}: {incremental[runs / 2]:F2} ms");
        // Binding this output takes the C# compiler tens of seconds (7 MB of source); the snapshot and property tests compile smaller models.
    }
}
