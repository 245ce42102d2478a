using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using Collins.Bench;

namespace Collins.Benchmarks;

/// <summary>
/// One optimizer step of each kernel at d ∈ {1M, 16M, 64M, 256M} and Ratio ∈ {8, 32}. Kernels that
/// do not exist in this build (a generated variant or the run-time optimizer not yet merged) are
/// left out of the parameter list rather than reported as zero.
/// Restrict the matrix with the environment variables COLLINS_BENCH_LENGTHS (e.g. "1M,16M"),
/// COLLINS_BENCH_RATIOS (e.g. "32") and COLLINS_BENCH_KERNELS (substrings of kernel names, e.g. "triad,Rotation").
/// </summary>
[MemoryDiagnoser]
[SimpleJob(launchCount: 1, warmupCount: 3, iterationCount: 7)]
public class KernelBenchmarks
{
    private static readonly string[] AllKernels =
    {
        "triad (limit)", "dense AdamW", "dense AdamW β1=0",
        "generated Rotation", "generated Rotation β1=0", "generated Universal", "generated Universal β1=0",
        "runtime CountSketchAdam Rotation", "runtime CountSketchAdam Universal",
        "runtime Factored", "runtime Factored clip=1", "runtime Factored q8", "runtime Factored q8 sr", "runtime Factored q4", "runtime Factored q4 sr",
        "runtime CountSketchAdam Rotation clipnorm=1", "runtime dense (Ratio 1)", "runtime dense (Ratio 1) clipnorm=1",
    };

    [ParamsSource(nameof(Lengths))] public string Length { get; set; } = "1M";
    [ParamsSource(nameof(Ratios))] public int Ratio { get; set; } = 32;
    [ParamsSource(nameof(Kernels))] public string Kernel { get; set; } = "triad (limit)";

    public static IEnumerable<string> Lengths() => Env("COLLINS_BENCH_LENGTHS", "1M,16M,64M,256M");
    public static IEnumerable<int> Ratios() => Env("COLLINS_BENCH_RATIOS", "8,32").Select(int.Parse);
    public static IEnumerable<string> Kernels()
    {
        var wanted = Env("COLLINS_BENCH_KERNELS", "").ToArray();
        // Probe availability on a tiny model-sized buffer set: generated variants exist for every benchmark size or none.
        var probe = new BenchBuffers(1 << 20);
        var missing = new List<string>();
        var available = KernelSet.Create(probe, 32, 1, missing);
        var names = available.Select(k => k.Name).ToHashSet();
        foreach (var k in available) k.Dispose();
        return AllKernels.Where(names.Contains)
                         .Where(n => wanted.Length == 0 || wanted.Any(w => n.Contains(w, StringComparison.OrdinalIgnoreCase)));
    }

    private static string[] Env(string name, string fallback) =>
        (Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : fallback)
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private BenchBuffers? _buffers;
    private IBenchKernel? _kernel;

    [GlobalSetup]
    public void Setup()
    {
        int length = checked((int)Sizes.Parse(Length));
        _buffers = new BenchBuffers(length);
        var missing = new List<string>();
        var kernels = KernelSet.Create(_buffers, Ratio, Environment.ProcessorCount, missing, n => n == Kernel);
        _kernel = kernels.Count == 1 ? kernels[0] : throw new InvalidOperationException($"kernel '{Kernel}' unavailable: {string.Join("; ", missing)}");
    }

    [GlobalCleanup]
    public void Cleanup() { _kernel?.Dispose(); _kernel = null; _buffers = null; }

    /// <summary>One whole step of the selected kernel.</summary>
    [Benchmark]
    public void Step() => _kernel!.Step();
}

public static class Program
{
    public static void Main(string[] args) =>
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, DefaultConfig.Instance);
}
