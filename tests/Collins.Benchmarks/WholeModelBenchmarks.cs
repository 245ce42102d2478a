using BenchmarkDotNet.Attributes;
using Collins.Bench;

namespace Collins.Benchmarks;

/// <summary>
/// The whole-model step (<see cref="WholeModelBench"/>): one step over the 148 tensors of the GPT-2-small-shaped model, per row
/// (triad over one buffer of the same size, dense AdamW, the two generated optimizers). Restrict the rows with
/// COLLINS_BENCH_KERNELS (substrings of row names).
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 7)]
#pragma warning disable CA1001 // BenchmarkDotNet owns the lifetime: [GlobalSetup] creates the setup, [GlobalCleanup] disposes it
public class WholeModelBenchmarks
#pragma warning restore CA1001
{
    private static readonly string[] AllRows =
        { "triad (limit), one buffer", "dense AdamW, 148 tensors", "generated Rotation R32", "generated Rotation R32 Mean β1=0" };

    [ParamsSource(nameof(Rows))] public string Row { get; set; } = AllRows[0];

    public static IEnumerable<string> Rows()
    {
        var wanted = (Environment.GetEnvironmentVariable("COLLINS_BENCH_KERNELS") ?? "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return AllRows.Where(r => wanted.Length == 0 || wanted.Any(w => r.Contains(w, StringComparison.OrdinalIgnoreCase)));
    }

    private WholeModelBench.Setup? _setup;
    private Action? _step;

    [GlobalSetup]
    public void Setup()
    {
        _setup = new WholeModelBench.Setup(Environment.ProcessorCount);
        _step = _setup.Rows.Single(r => r.Name == Row).Step;
    }

    [GlobalCleanup]
    public void Cleanup() { _setup?.Dispose(); _setup = null; _step = null; }

    /// <summary>One whole-model step of the selected row.</summary>
    [Benchmark]
    public void Step() => _step!();
}
