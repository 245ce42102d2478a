using System.Collections.Immutable;
using Microsoft.CodeAnalysis;

namespace Collins.Generators.Tests.Infrastructure;

/// <summary>
/// The shortest way to run the generator in a test: source in; run result, output compilation and the generator's
/// diagnostics out. A facade over <see cref="GeneratorDriverHelper"/> (which also offers incremental re-runs).
/// </summary>
internal static class GeneratorHarness
{
    public static (GeneratorDriverRunResult Result, Compilation Output, ImmutableArray<Diagnostic> Diagnostics) Run(string source)
    {
        var run = GeneratorDriverHelper.Run(source);
        return (run.Result, run.Output, run.Result.Diagnostics);
    }
}
