using BenchmarkDotNet.Attributes;
using Collins.Bench;

namespace Collins.Benchmarks;

/// <summary>
/// The whole-model step (<see cref="WholeModelBench"/>): one step over the 148 tensors of the GPT-2-small-shaped model, per row
/// (<see cref="WholeModelBench.RowNames"/>: triad over one buffer of the same size, dense AdamW, the generated Rotation and factored
/// optimizers). Restrict the rows with COLLINS_BENCH_KERNELS (substrings of row names, comma-separated); each run builds only its row.
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 7)]
#pragma warning disable CA1001 // BenchmarkDotNet owns the lifetime: [GlobalSetup] creates the setup, [GlobalCleanup] disposes it
public class WholeModelBenchmarks
#pragma warning restore CA1001
{
    [ParamsSource(nameof(Rows))] public string Row { get; set; } = WholeModelBench.RowNames[0];

    public static IEnumerable<string> Rows()
    {
        var wanted = (Environment.GetEnvironmentVariable("COLLINS_BENCH_KERNELS") ?? "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return WholeModelBench.RowNames.Where(r => wanted.Length == 0 || wanted.Any(w => r.Contains(w, StringComparison.OrdinalIgnoreCase)));
    }

    private WholeModelBench.Setup? _setup;
    private Action? _step;

    [GlobalSetup]
    public void Setup()
    {
        _setup = new WholeModelBench.Setup(Environment.ProcessorCount, name => name == Row);
        _step = _setup.Rows.Single().Step;
    }

    [GlobalCleanup]
    public void Cleanup() { _setup?.Dispose(); _setup = null; _step = null; }

    /// <summary>One whole-model step of the selected row.</summary>
    [Benchmark]
    public void Step() => _step!();
}
